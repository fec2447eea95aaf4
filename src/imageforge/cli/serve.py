"""``imageforge serve`` (the HTTP API on uvicorn, drained on SIGTERM) and ``imageforge models``."""

from __future__ import annotations

import argparse
import ipaddress

from rich.console import Console

from imageforge import __version__
from imageforge.cli.local import configure_torch
from imageforge.cli.models import prepare_models
from imageforge.cli.parser import settings_from
from imageforge.config import load_catalogue
from imageforge.errors import InvalidRequestError

__all__ = ["run_models", "run_serve"]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run_serve(ns: argparse.Namespace, console: Console) -> int:
    import uvicorn

    from imageforge.api.app import create_app
    from imageforge.api.lifecycle import DrainingServer

    settings = settings_from(ns)
    if not settings.api_keys and not settings.allow_unauthenticated and not _is_loopback(settings.host):
        raise InvalidRequestError(
            f"refusing to serve {settings.host} without API keys: anyone who can reach it could use it. Set "
            "--api-key (or IMAGEFORGE_API_KEYS), or pass --allow-unauthenticated if that is what you want.",
            param="host",
        )
    prepare_models(settings, console)  # hub models into the cache first, with download progress
    url = f"http://{settings.host}:{settings.port}"
    if settings.backend == "ray":
        from imageforge.distributed.app import serve_forever

        def ready() -> None:
            console.print(f"ImageForge {__version__} on Ray Serve: {url}/v1", soft_wrap=True)

        serve_forever(settings, on_ready=ready)
        return 0
    configure_torch(settings)
    app = create_app(settings)
    console.print(f"ImageForge {__version__} on {url}/v1  (data: {settings.data_dir})", soft_wrap=True)
    console.print(f"Playground: {url}/", soft_wrap=True)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level=settings.log_level,
                            log_config=None, timeout_graceful_shutdown=5)  # fmt: skip
    state = app.state.imageforge
    DrainingServer(config, state.drain, settings.drain_timeout_seconds, abort=state.engines.abort).run()
    return 0


def run_models(ns: argparse.Namespace, console: Console) -> int:
    catalogue = load_catalogue(settings_from(ns))
    for model_id, entry in sorted(catalogue.models.items()):
        console.print(f"{model_id}\tengine={entry.engine}\tprofile={entry.profile}", soft_wrap=True)
    return 0
