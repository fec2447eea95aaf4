"""The app factory: ``create_app(settings)`` builds the services, the routes and the error mapping.

Nothing happens at import time (DESIGN.md §4.6). Start-up queues every engine's ``load()`` on its own worker
thread (requests wait for it; the server answers at once) and starts the sweeper that deletes expired url images.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from fastapi import FastAPI

from imageforge import __version__
from imageforge.api.auth import ApiKeys
from imageforge.api.errors import install_error_handlers
from imageforge.api.middleware import RequestIdMiddleware
from imageforge.api.routes import files, images, models
from imageforge.api.state import AppState
from imageforge.config import Catalogue, Settings, load_catalogue
from imageforge.engines.embedded.config import WEIGHTS_DIR
from imageforge.scheduler.pool import EnginePool
from imageforge.serving.images import ImagesService
from imageforge.serving.models import ModelsService
from imageforge.serving.usage import TokenCounter
from imageforge.storage.files import FileImageStore
from imageforge.storage.signing import UrlSigner, load_or_create_key

__all__ = ["build_state", "create_app"]

log = logging.getLogger(__name__)


def build_state(settings: Settings, catalogue: Catalogue | None = None) -> AppState:
    catalogue = catalogue if catalogue is not None else load_catalogue(settings)
    data = settings.data_dir
    store = FileImageStore(data / "images")
    signer = UrlSigner(load_or_create_key(data / "url-signing.key"))
    engines = EnginePool(catalogue, settings)
    images_service = ImagesService(
        catalogue,
        engines,
        store,
        signer,
        TokenCounter(WEIGHTS_DIR / "tokenizer" / "tokenizer.json"),
        url_ttl_seconds=settings.url_ttl_seconds,
        default_gpt_model=settings.default_gpt_model,
    )
    return AppState(
        settings=settings,
        catalogue=catalogue,
        engines=engines,
        store=store,
        signer=signer,
        images=images_service,
        models=ModelsService(catalogue, created=int(time.time())),
    )


async def _sweep_forever(state: AppState) -> None:
    while True:
        try:
            await asyncio.to_thread(state.store.sweep, state.clock())
        except OSError as exc:  # a full or read-only disk must not kill the sweeper; try again next time
            log.warning("sweeping expired images failed: %s", exc)
        await asyncio.sleep(state.settings.sweep_interval_seconds)


def create_app(settings: Settings, catalogue: Catalogue | None = None) -> FastAPI:
    state = build_state(settings, catalogue)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.engines.start_all()
        sweeper = asyncio.create_task(_sweep_forever(state))
        try:
            yield
        finally:
            sweeper.cancel()
            state.engines.close()

    app = FastAPI(
        title="ImageForge", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.imageforge = state
    app.state.api_keys = ApiKeys(settings.api_keys)
    install_error_handlers(app)
    app.add_middleware(RequestIdMiddleware)
    app.include_router(images.router)
    app.include_router(models.router)
    app.include_router(files.router)

    @app.get("/health", include_in_schema=False)
    async def health() -> dict[str, object]:
        return {"status": "ok", "engines": state.engines.status()}

    return app
