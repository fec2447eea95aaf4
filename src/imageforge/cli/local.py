"""``imageforge generate`` and ``imageforge edit`` in-process: the catalogue's engine loaded here, the request
resolved by the API's own rules, a progress bar over the denoising steps, previews saved from the engine's own
step callback (``--partials``), and the images written atomically."""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from imageforge.cli.files import output_target, partial_path, result_paths
from imageforge.cli.parser import settings_from
from imageforge.cli.progress import step_progress
from imageforge.cli.requests import preview_count, read_edit_files, request_fields
from imageforge.config import EMBEDDED_ID, Catalogue, Settings, load_catalogue
from imageforge.params import StepPreview

if TYPE_CHECKING:
    from imageforge.engines.base import Engine
    from imageforge.validation import ResolvedRequest

__all__ = ["configure_torch", "run_local"]


def configure_torch(settings: Settings) -> None:
    if settings.threads is not None:
        import torch

        torch.set_num_threads(settings.threads)


def run_local(ns: argparse.Namespace, console: Console, *, edit: bool) -> int:
    from imageforge.engines.registry import create_engine

    settings = settings_from(ns)
    configure_torch(settings)
    catalogue = load_catalogue(settings)
    model = ns.model or EMBEDDED_ID
    fmt, out = output_target(ns.output, ns.output_format, "edited" if edit else "image")
    fields = request_fields(ns, model, fmt, gpt=catalogue.profile(model).gpt)
    k = preview_count(ns, default=0)
    entry = catalogue.entry(model)
    t0 = time.perf_counter()
    engine = create_engine(entry.engine, entry.options, settings.engine_defaults())
    try:
        if edit:
            resolved = _resolve_edit(ns, fields, catalogue, engine, settings)
        else:
            resolved = _resolve(ns, fields, catalogue, engine)
        return _run(engine, resolved, out, console, t0, ns.partials, k)
    finally:
        engine.close()


def _resolve(
    ns: argparse.Namespace, fields: dict[str, object], catalogue: Catalogue, engine: Engine
) -> ResolvedRequest:
    from imageforge.validation import resolve

    return resolve(fields, catalogue, engine.capabilities, seed=ns.seed)


def _resolve_edit(
    ns: argparse.Namespace, fields: dict[str, object], catalogue: Catalogue, engine: Engine, settings: Settings
) -> ResolvedRequest:
    from imageforge.protocol.edits import parse_edit_request
    from imageforge.serving.edits import decode_inputs
    from imageforge.validation_edits import resolve_edit

    req = parse_edit_request(fields)
    files = read_edit_files(ns.images, ns.mask)
    inputs = decode_inputs(catalogue.profile(str(fields["model"])), files.images, files.mask)
    resolved = resolve_edit(req, [i.image for i in inputs.images], inputs.mask, catalogue, engine.capabilities,
                            default_gpt_model=settings.default_gpt_model)  # fmt: skip
    if ns.seed is None:
        return resolved
    return dataclasses.replace(resolved, params=dataclasses.replace(resolved.params, seed=ns.seed))


def _run(
    engine: Engine, resolved: ResolvedRequest, out: Path, console: Console, t0: float, partials: Path | None, k: int
) -> int:
    from imageforge.imaging.encode import encode
    from imageforge.serving.pipeline import preview_steps
    from imageforge.storage.atomic import write_atomic

    engine.load()
    t_loaded = time.perf_counter()
    p = resolved.params
    saved: list[Path] = []
    with step_progress(console, f"{p.width}x{p.height} x{p.n}", p.denoising_steps) as progress:

        def on_step(st: StepPreview) -> None:
            progress.advance_to(st.step, st.total_steps)
            if partials is None or k == 0 or st.step not in preview_steps(st.total_steps, k):
                return
            index = preview_steps(st.total_steps, k).index(st.step)
            for i, image in enumerate(st.preview(0)):
                path = partial_path(partials, out, i, p.n, index)
                write_atomic(path, encode(image, resolved.output_format, resolved.output_compression))
                saved.append(path)

        result = engine.generate([p], on_step=on_step)[0]
    t_done = time.perf_counter()
    paths = result_paths(out, p.n)
    for path, image in zip(paths, result.images, strict=True):
        write_atomic(path, encode(image, resolved.output_format, resolved.output_compression))
    for path, seed in zip(paths, result.seeds, strict=True):
        console.print(f"{path}  ({resolved.size}, {resolved.output_format}, seed {seed})", soft_wrap=True)
    if saved:
        console.print(f"{len(saved)} previews in {partials}", soft_wrap=True)
    console.print(
        f"[dim]{resolved.model}: quality {resolved.quality} ({p.steps} steps); load {t_loaded - t0:.1f}s, "
        f"generate {t_done - t_loaded:.2f}s[/dim]",
        soft_wrap=True,
    )
    return 0
