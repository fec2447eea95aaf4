"""``imageforge`` command line: ``serve`` (the HTTP API), ``generate`` (in-process, to files) and ``models``.

Flags map one to one onto :class:`~imageforge.config.Settings` fields; request flags go through the same
validation as the HTTP API, so ``imageforge generate`` accepts exactly what ``POST /v1/images/generations`` does.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from imageforge import __version__
from imageforge.config import EMBEDDED_ID, Settings, load_catalogue
from imageforge.errors import ImageForgeError, InvalidRequestError
from imageforge.params import StepPreview

if TYPE_CHECKING:
    from imageforge.engines.base import Engine
    from imageforge.validation import ResolvedRequest

__all__ = ["main"]

log = logging.getLogger(__name__)
_SUFFIX_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp"}


def _settings_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="model catalogue (TOML) [IMAGEFORGE_CONFIG]")
    p.add_argument("--data-dir", type=Path, help="data directory [IMAGEFORGE_DATA_DIR]")
    p.add_argument("--device", help="auto, cpu, cuda, cuda:N [IMAGEFORGE_DEVICE]")
    p.add_argument("--dtype", help="auto, float32, float16, bfloat16 [IMAGEFORGE_DTYPE]")
    p.add_argument("--threads", type=int, help="CPU threads for torch [IMAGEFORGE_THREADS]")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="[IMAGEFORGE_LOG_LEVEL]")


def _settings(ns: argparse.Namespace) -> Settings:
    # Every flag whose dest is a Settings field maps onto it (a flag not given is None and leaves the default).
    overrides = {k: getattr(ns, k, None) for k in Settings.model_fields}
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="imageforge", description="Self-hosted, OpenAI-compatible image generation.")
    ap.add_argument("--version", action="version", version=f"imageforge {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="make images in-process and write them to files")
    gen.add_argument("prompt")
    gen.add_argument("-o", "--output", type=Path, help="output file (default image.<format>)")
    gen.add_argument("--model", default=EMBEDDED_ID, help=f"model id from the catalogue (default {EMBEDDED_ID})")
    gen.add_argument("--size", help="WxH or auto, as the model's API rules allow (default: the model's default)")
    gen.add_argument("--quality", help="low, medium, high, auto (standard/hd for dall-e models)")
    gen.add_argument("--background", choices=["transparent", "opaque", "auto"])
    gen.add_argument("--format", dest="output_format", choices=["png", "jpeg", "webp"], help="default: from -o")
    gen.add_argument("--compression", dest="output_compression", type=int, help="0-100 (output_compression)")
    gen.add_argument("--n", type=int, help="number of images (files get -1, -2, ... suffixes)")
    gen.add_argument("--seed", type=int, help="seed of the first image (image i uses seed + i)")
    _settings_args(gen)

    serve = sub.add_parser("serve", help="serve OpenAI's image API over HTTP")
    serve.add_argument("--host", help="address to bind (default 127.0.0.1) [IMAGEFORGE_HOST]")
    serve.add_argument("--port", type=int, help="port (default 8000) [IMAGEFORGE_PORT]")
    serve.add_argument(
        "--api-key", dest="api_keys", action="append", help="accepted Bearer key; repeatable [IMAGEFORGE_API_KEYS]"
    )
    serve.add_argument(
        "--allow-unauthenticated", action="store_true", default=None,
        help="allow a non-loopback --host with no API keys [IMAGEFORGE_ALLOW_UNAUTHENTICATED]",
    )  # fmt: skip
    serve.add_argument("--public-base-url", help="base of image URLs [IMAGEFORGE_PUBLIC_BASE_URL]")
    serve.add_argument("--url-ttl", dest="url_ttl_seconds", type=int, help="image URL lifetime in seconds (3600)")
    serve.add_argument("--default-gpt-model", help="model an omitted `model` means with GPT-only parameters")
    serve.add_argument(
        "--planner-url", help="OpenAI-compatible chat-completions base URL for /v1/responses [IMAGEFORGE_PLANNER_URL]"
    )
    serve.add_argument(
        "--planner-model", dest="planner_models", action="append",
        help="request model answered by --planner-url (id, id=upstream, or *); repeatable [IMAGEFORGE_PLANNER_MODELS]",
    )  # fmt: skip
    serve.add_argument(
        "--responses-finished-status", choices=["completed", "generating"],
        help="finished image_generation_call status (completed) [IMAGEFORGE_RESPONSES_FINISHED_STATUS]",
    )  # fmt: skip
    serve.add_argument("--queue-limit", type=int, help="requests waiting per engine before 429 (64)")
    serve.add_argument("--max-queue-seconds", type=float,
                       help="longest wait for queued work before 429 (default: 1/4 of a request's run)")  # fmt: skip
    serve.add_argument("--max-batch", type=int, help="images per engine call across requests (engine's; 1 = off)")
    serve.add_argument("--batch-wait-ms", type=float, help="wait for compatible requests to batch with (5)")
    serve.add_argument("--request-timeout", dest="request_timeout_seconds", type=float,
                       help="longest a generation may take, queue included (580; 0 = none)")  # fmt: skip
    serve.add_argument("--drain-timeout", dest="drain_timeout_seconds", type=float,
                       help="on SIGTERM, how long in-flight requests may take (30)")  # fmt: skip
    serve.add_argument("--no-warmup", dest="warmup", action="store_false", default=None,
                       help="skip the warm-up generation of each engine")  # fmt: skip
    serve.add_argument("--no-moderation-input", dest="moderation_input", action="store_false", default=None,
                       help="do not check prompts and input images")  # fmt: skip
    serve.add_argument("--no-moderation-output", dest="moderation_output", action="store_false", default=None,
                       help="do not check generated images")  # fmt: skip
    serve.add_argument("--moderation-auto", help="thresholds for moderation=auto, e.g. sexual=0.6,image=0.7")
    serve.add_argument("--moderation-low", help="thresholds for moderation=low (sexual/minors is never relaxed)")
    serve.add_argument("--moderation-lexicon", type=Path, help="a prompt lexicon of your own (TOML)")
    serve.add_argument("--moderation-threads", type=int, help="CPU threads of the image classifier (2)")
    serve.add_argument("--moderation-plugin", dest="moderation_plugins", action="append",
                       help="enable an installed moderation plug-in; repeatable")  # fmt: skip
    serve.add_argument("--responses-retention", dest="responses_retention_seconds", type=int,
                       help="seconds stored responses are kept (30 days; 0 = for ever)")  # fmt: skip
    serve.add_argument("--metrics-key", help="Bearer key that may read /metrics besides the API keys")
    serve.add_argument("--metrics-user-labels", choices=["hashed", "plain"],
                       help="end-user label values in /metrics (hashed)")  # fmt: skip
    for scope in ("key", "user"):
        for kind in ("requests", "images"):
            serve.add_argument(f"--{scope}-{kind}-per-minute", type=int, help=f"per {scope} (default: no limit)")
    _settings_args(serve)

    models = sub.add_parser("models", help="list the served model ids")
    _settings_args(models)
    return ap


def _output_format(ns: argparse.Namespace) -> tuple[str, Path]:
    out: Path = ns.output if ns.output is not None else Path("image")
    from_suffix = _SUFFIX_FORMATS.get(out.suffix.lower())
    fmt = ns.output_format or from_suffix or "png"
    if out.suffix == "":
        out = out.with_suffix("." + ("jpg" if fmt == "jpeg" else fmt))
    elif from_suffix is None:
        raise InvalidRequestError(f"cannot tell the format of {out.name}; use .png, .jpg or .webp", param="output")
    elif from_suffix != fmt:
        raise InvalidRequestError(f"--format {fmt} does not match the file name {out.name}", param="output_format")
    return fmt, out


def _paths(out: Path, n: int) -> list[Path]:
    if n == 1:
        return [out]
    return [out.with_name(f"{out.stem}-{i}{out.suffix}") for i in range(1, n + 1)]


def _generate(ns: argparse.Namespace, console: Console) -> int:
    from imageforge.engines.registry import create_engine
    from imageforge.validation import resolve

    settings = _settings(ns)
    _configure_torch(settings)
    catalogue = load_catalogue(settings)
    fmt, out = _output_format(ns)
    fields: dict[str, Any] = {"prompt": ns.prompt, "model": ns.model, "output_format": fmt}
    for name in ("size", "quality", "background", "output_compression", "n"):
        if getattr(ns, name) is not None:
            fields[name] = getattr(ns, name)
    entry = catalogue.entry(ns.model)
    if not catalogue.profile(ns.model).gpt:
        fields.pop("output_format")  # DALL·E profiles take no output_format; png is their format
        if fmt != "png":
            raise InvalidRequestError(f"{ns.model} produces png only", param="output_format")
    t0 = time.perf_counter()
    engine = create_engine(entry.engine, entry.options, settings.engine_defaults())
    resolved = resolve(fields, catalogue, engine.capabilities, seed=ns.seed)
    try:
        return _run(engine, resolved, out, console, t0)
    finally:
        engine.close()


def _run(engine: Engine, resolved: ResolvedRequest, out: Path, console: Console, t0: float) -> int:
    from imageforge.imaging.encode import encode
    from imageforge.storage.atomic import write_atomic

    engine.load()
    t_loaded = time.perf_counter()
    p = resolved.params
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} steps"),
        TimeElapsedColumn(), console=console, transient=True,
    ) as progress:  # fmt: skip
        task = progress.add_task(f"{p.width}x{p.height} x{p.n}", total=p.steps)

        def on_step(st: StepPreview) -> None:
            progress.update(task, completed=st.step, total=st.total_steps)

        result = engine.generate([p], on_step=on_step)[0]
    t_done = time.perf_counter()
    paths = _paths(out, p.n)
    for path, image in zip(paths, result.images, strict=True):
        write_atomic(path, encode(image, resolved.output_format, resolved.output_compression))
    for path, seed in zip(paths, result.seeds, strict=True):
        console.print(f"{path}  ({resolved.size}, {resolved.output_format}, seed {seed})")
    console.print(
        f"[dim]{resolved.model}: quality {resolved.quality} ({p.steps} steps); load {t_loaded - t0:.1f}s, "
        f"generate {t_done - t_loaded:.2f}s[/dim]"
    )
    return 0


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _serve(ns: argparse.Namespace, console: Console) -> int:
    import uvicorn

    from imageforge.api.app import create_app
    from imageforge.api.lifecycle import DrainingServer

    settings = _settings(ns)
    if not settings.api_keys and not settings.allow_unauthenticated and not _is_loopback(settings.host):
        raise InvalidRequestError(
            f"refusing to serve {settings.host} without API keys: anyone who can reach it could use it. Set "
            "--api-key (or IMAGEFORGE_API_KEYS), or pass --allow-unauthenticated if that is what you want.",
            param="host",
        )
    _configure_torch(settings)
    app = create_app(settings)
    console.print(f"ImageForge {__version__} on http://{settings.host}:{settings.port}/v1  (data: {settings.data_dir})")
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level=settings.log_level,
                            log_config=None, timeout_graceful_shutdown=5)  # fmt: skip
    state = app.state.imageforge
    DrainingServer(config, state.drain, settings.drain_timeout_seconds, abort=state.engines.abort).run()
    return 0


def _models(ns: argparse.Namespace, console: Console) -> int:
    catalogue = load_catalogue(_settings(ns))
    for model_id, entry in sorted(catalogue.models.items()):
        console.print(f"{model_id}\tengine={entry.engine}\tprofile={entry.profile}")
    return 0


def _configure_torch(settings: Settings) -> None:
    if settings.threads is not None:
        import torch

        torch.set_num_threads(settings.threads)


def _configure_logging(settings: Settings) -> None:
    """ImageForge's own records at the configured level; libraries keep their defaults (warnings)."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("imageforge").setLevel(settings.log_level.upper())
    # The multipart parser warns once per malformed upload, which the client already got as a 400: a hostile
    # client must not be able to fill the log with them.
    logging.getLogger("python_multipart").setLevel(logging.ERROR)


def main(argv: Sequence[str] | None = None) -> int:
    ns = _parser().parse_args(argv)
    out, err = Console(), Console(stderr=True)
    try:
        _configure_logging(_settings(ns))
        if ns.command == "generate":
            return _generate(ns, out)
        if ns.command == "serve":
            return _serve(ns, out)
        return _models(ns, out)
    except ImageForgeError as exc:
        param = f" (param: {exc.param})" if exc.param else ""
        err.print(f"[red]error:[/red] {exc.message}{param}")
        return 2
    except ValidationError as exc:  # a setting from a flag or the environment is invalid
        err.print(f"[red]error:[/red] invalid setting: {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
