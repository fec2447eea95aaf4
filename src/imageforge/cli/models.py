"""The command-line pieces for real checkpoints: ``serve --model`` / ``--offline`` and ``imageforge pull``.

``cli/parser.py`` and ``cli/serve.py`` wire them in: :func:`add_model_flags` on the ``serve`` and ``models``
parsers, :func:`add_pull_parser` on the sub-commands, :func:`run_pull` for ``pull``, and :func:`prepare_models`
before the app is built, so that the server starts with every hub model in the Hugging Face cache.
"""

from __future__ import annotations

import argparse
import logging
import shlex
from typing import Any

from rich.console import Console

from imageforge.config import Settings
from imageforge.engines.families import Family

__all__ = ["add_model_flags", "add_pull_parser", "prepare_models", "run_pull"]

log = logging.getLogger(__name__)

_MODEL_HELP = (
    "a model to serve, detected from its files: SOURCE or ID=SOURCE, where SOURCE is a hub id (org/name), a "
    "diffusers directory or a .safetensors file; the id defaults to the last path part, lower-cased. Repeatable; "
    "the first also answers the OpenAI model names (gpt-image-1, dall-e-3, ...) [IMAGEFORGE_MODELS]"
)


def add_model_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", dest="models", action="append", metavar="[ID=]SOURCE", help=_MODEL_HELP)
    parser.add_argument(
        "--offline", action="store_true", default=None,
        help="no network: hub ids come from the Hugging Face cache only [IMAGEFORGE_OFFLINE]",
    )  # fmt: skip


def add_pull_parser(subparsers: Any) -> argparse.ArgumentParser:
    """``imageforge pull SOURCE [--offline] [--variant fp16]``; ``subparsers`` is ``add_subparsers()``'s result."""
    pull: argparse.ArgumentParser = subparsers.add_parser(
        "pull", help="download a hub model into the Hugging Face cache and show how it will be served"
    )
    pull.add_argument("source", help="hub id (org/name), diffusers directory or .safetensors file")
    pull.add_argument("--offline", action="store_true", default=None, help="check the cache only; no network")
    pull.add_argument("--variant", help="weights variant to prefer, e.g. fp16 (half the download)")
    return pull


def _family_lines(family: Family) -> list[str]:
    steps = family.steps
    scheduler = family.scheduler or "the checkpoint's own"
    if family.scheduler_config:
        scheduler += " " + ", ".join(f"{k}={v}" for k, v in family.scheduler_config)
    return [
        f"family      {family.name}: {family.description}",
        f"pipeline    {family.pipeline or 'AutoPipelineForText2Image'}",
        f"steps       low {steps.low}, medium {steps.medium}, high {steps.high}",
        f"guidance    {family.guidance_scale if family.guidance_scale is not None else 'pipeline default'}",
        f"scheduler   {scheduler}",
        f"native size {family.native_size}x{family.native_size}, max batch {family.max_batch}",
        f"API profile {family.profile} (own id); the first --model also answers the OpenAI names",
        f"previews    {family.preview_vae or 'the model VAE'}",
    ]


def run_pull(ns: argparse.Namespace, console: Console) -> int:
    """Download (or, offline, find) the model, then print where it is, its family, and the serve command."""
    from imageforge.engines.detection import detect_directory, detect_single_file
    from imageforge.engines.sources import parse_spec, pull, pull_preview

    spec = parse_spec(ns.source)
    offline = bool(ns.offline)
    path = pull(spec.source, offline=offline, variant=ns.variant)
    detection = detect_single_file(path) if spec.kind == "file" else detect_directory(
        path, name=spec.source if spec.kind == "hub" else path.name
    )  # fmt: skip
    family = detection.family
    if family.preview_vae and not pull_preview(family.preview_vae, offline=offline):
        console.print(f"[yellow]preview decoder {family.preview_vae} not available; previews use the model VAE")
    console.print(f"[bold]{spec.model_id}[/bold]  {path}")
    for line in _family_lines(family):
        console.print(f"  {line}")
    console.print(f"  [dim]detected by: {detection.reason}[/dim]")
    console.print("serve it with:")
    console.print(f"  imageforge serve --model {shlex.quote(spec.source)}", markup=False, highlight=False)
    return 0


def prepare_models(settings: Settings, console: Console) -> None:
    """Before the app is built: every hub model of ``settings.models`` in the cache (downloaded with progress
    unless it is there already or ``offline``), and its family's preview decoder where one can be had."""
    from imageforge.engines.detection import detect_directory
    from imageforge.engines.sources import is_offline, parse_spec, pull, pull_preview
    from imageforge.errors import ConfigurationError

    for raw in settings.models:
        spec = parse_spec(raw)
        if spec.kind != "hub":
            continue
        try:
            # A complete cached copy is used as it is (an fp16 pull stays fp16); `imageforge pull` updates.
            path = pull(spec.source, offline=True)
        except ConfigurationError:
            if is_offline(settings.offline):
                raise
            console.print(f"downloading {spec.source} into the Hugging Face cache ...")
            path = pull(spec.source, offline=False)
        family = detect_directory(path, name=spec.source).family
        console.print(f"{spec.model_id}: {family.description} ({spec.source})")
        if family.preview_vae:
            pull_preview(family.preview_vae, offline=settings.offline)
