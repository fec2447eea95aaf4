"""The app factory: ``create_app(settings)`` builds the services, the routes and the error mapping.

Nothing happens at import time (DESIGN.md §4.6). Start-up starts every engine's worker thread, which loads and
warms its engine (requests wait for it; the server answers at once; ``/ready`` says when it is done), and the
sweeper that deletes expired url images. ``/metrics`` is prometheus' text format; ``/health`` is liveness.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from imageforge import __version__
from imageforge.api.auth import ApiKeys
from imageforge.api.errors import install_error_handlers
from imageforge.api.lifecycle import Drain, DrainMiddleware
from imageforge.api.middleware import RequestIdMiddleware
from imageforge.api.openapi import install_openapi
from imageforge.api.paths import files_url
from imageforge.api.routes import edits, files, images, models, playground, responses
from imageforge.api.state import AppState, EngineBackend
from imageforge.config import RESPONSES_DEFAULT_IMAGE_MODEL, Catalogue, Settings, load_catalogue
from imageforge.engines.embedded.config import WEIGHTS_DIR
from imageforge.errors import ServiceUnavailableError
from imageforge.metrics import CONTENT_TYPE, Metrics
from imageforge.moderation import Moderator
from imageforge.protocol.edits import ImageEditRequest, ImageVariationRequest
from imageforge.protocol.errors import ErrorResponse
from imageforge.protocol.image_events import (
    ImageEditCompletedEvent,
    ImageEditPartialImageEvent,
    ImageGenCompletedEvent,
    ImageGenPartialImageEvent,
    StreamErrorEvent,
)
from imageforge.protocol.images import ImageGenerateRequest, ImagesResponse
from imageforge.protocol.models import Model, ModelList
from imageforge.protocol.response_events import RESPONSE_STREAM_EVENTS
from imageforge.protocol.responses import Response as ResponseObject
from imageforge.protocol.responses import ResponseCreateRequest, ResponseDeleted, ResponseItemList
from imageforge.scheduler.gateway import InProcessGateway
from imageforge.scheduler.pool import EnginePool
from imageforge.scheduler.traffic import Traffic
from imageforge.serving.delivery import Delivery
from imageforge.serving.edits import EditsService
from imageforge.serving.encoding import EncodePool
from imageforge.serving.generations import GenerationsService
from imageforge.serving.models import ModelsService
from imageforge.serving.pipeline import GenerationPipeline
from imageforge.serving.planners import PlannerRouter
from imageforge.serving.ratelimit import RateLimiter
from imageforge.serving.responses import ResponsesService
from imageforge.serving.screening import Screening
from imageforge.serving.usage import TokenCounter
from imageforge.serving.variations import VariationsService
from imageforge.storage.images import open_image_store
from imageforge.storage.responses import open_response_store
from imageforge.storage.signing import UrlSigner, signing_key

__all__ = ["EngineBackend", "build_state", "create_app", "local_backend"]

log = logging.getLogger(__name__)


# (catalogue, settings, metrics, the server's request count) -> the engines
BackendFactory = Callable[[Catalogue, Settings, Metrics, Traffic], EngineBackend]


def local_backend(catalogue: Catalogue, settings: Settings, metrics: Metrics, traffic: Traffic) -> EngineBackend:
    """The engines of this process: one worker thread per engine (the default)."""
    pool = EnginePool(catalogue, settings, metrics, traffic)
    return EngineBackend(pool, InProcessGateway(pool))


def build_state(
    settings: Settings, catalogue: Catalogue | None = None, backend: BackendFactory = local_backend
) -> AppState:
    catalogue = catalogue if catalogue is not None else load_catalogue(settings)
    data = settings.data_dir
    store = open_image_store(settings)  # filesystem or s3; a misconfigured store fails here, at start-up
    signer = UrlSigner(signing_key(settings))
    metrics = Metrics(max_users=settings.metrics_max_users, user_labels=settings.metrics_user_labels)
    traffic = Traffic()
    engines = backend(catalogue, settings, metrics, traffic)
    tokens = TokenCounter(WEIGHTS_DIR / "tokenizer" / "tokenizer.json")
    limits = RateLimiter(
        key_requests=settings.key_requests_per_minute,
        key_images=settings.key_images_per_minute,
        user_requests=settings.user_requests_per_minute,
        user_images=settings.user_images_per_minute,
        metrics=metrics,
        storage_uri=settings.rate_limit_storage,  # memory:// or a Redis every replica shares
    )
    moderator = Moderator.from_settings(settings)
    screening = Screening(moderator, metrics)
    encoder = EncodePool(settings.encode_pool, settings.encode_workers, metrics)
    delivery = Delivery(screening, encoder, store, signer, files_url, url_ttl_seconds=settings.url_ttl_seconds)
    pipeline = GenerationPipeline(engines.gateway, screening, delivery, limits, tokens, metrics)
    planners = PlannerRouter(
        settings.planner_url,
        settings.planner_models,
        api_key=settings.planner_api_key,
        timeout_s=settings.planner_timeout_seconds,
    )
    responses_service = ResponsesService(
        catalogue,
        pipeline,
        open_response_store(
            settings.responses_store,
            sqlite_path=data / "responses.sqlite3",
            postgres_dsn=settings.postgres_dsn.get_secret_value() if settings.postgres_dsn else None,
        ),
        planners,
        tokens,
        # The SDK's documented default where this server serves it (the default catalogue and --model do).
        default_image_model=RESPONSES_DEFAULT_IMAGE_MODEL
        if RESPONSES_DEFAULT_IMAGE_MODEL in catalogue.models
        else settings.default_gpt_model,
        finished_status=settings.responses_finished_status,
        max_input_tokens=settings.responses_max_input_tokens,
    )
    gpt = settings.default_gpt_model
    return AppState(
        settings=settings,
        catalogue=catalogue,
        engines=engines.fleet,
        backend=engines,
        store=store,
        signer=signer,
        pipeline=pipeline,
        generations=GenerationsService(pipeline, catalogue, default_gpt_model=gpt),
        edits=EditsService(pipeline, catalogue, default_gpt_model=gpt),
        variations=VariationsService(pipeline, catalogue),
        models=ModelsService(catalogue, created=int(time.time())),
        responses=responses_service,
        metrics=metrics,
        limits=limits,
        drain=Drain(traffic),
    )


async def _sweep_forever(state: AppState) -> None:
    """Delete expired url images, and stored responses past their retention (their images live inside them)."""
    retention = state.settings.responses_retention_seconds
    while True:
        now = state.clock()
        try:
            await asyncio.to_thread(state.store.sweep, now)
            if retention:
                deleted = await asyncio.to_thread(state.responses.store.sweep, now - retention)
                if deleted:
                    log.info("deleted %d stored responses older than %d s", deleted, retention)
        # A full or read-only disk, or an unreachable PostgreSQL, must not kill the sweeper; it tries again.
        except (OSError, sqlite3.Error, ServiceUnavailableError) as exc:
            log.warning("sweeping expired images or responses failed: %s", exc)
        await asyncio.sleep(state.settings.sweep_interval_seconds)


def create_app(
    settings: Settings, catalogue: Catalogue | None = None, backend: BackendFactory = local_backend
) -> FastAPI:
    state = build_state(settings, catalogue, backend)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.engines.start_all()
        await asyncio.to_thread(
            state.pipeline.screening.moderator.load
        )  # the image classifier, before the first request
        # Only a lone process owns every in-progress response: with a shared store (PostgreSQL) or on a cluster,
        # other replicas' responses are still running, and failing them would be wrong.
        if settings.backend == "process" and settings.responses_store == "sqlite":
            failed = await asyncio.to_thread(state.responses.store.fail_unfinished, "The server restarted.")
            if failed:
                log.warning("%d stored responses were left in progress by the previous process; marked failed", failed)
        sweeper = asyncio.create_task(_sweep_forever(state))
        try:
            yield
        finally:
            sweeper.cancel()
            await asyncio.to_thread(state.engines.close)
            state.pipeline.delivery.encoder.close()

    app = FastAPI(
        title="ImageForge",
        version=__version__,
        description="A self-hosted image-generation server that speaks OpenAI's image API.",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    install_openapi(
        app,
        requests=[ImageGenerateRequest, ImageEditRequest, ImageVariationRequest, ResponseCreateRequest],
        outputs=[ImagesResponse, ErrorResponse, ModelList, Model, ResponseObject, ResponseDeleted, ResponseItemList,
                 ImageGenPartialImageEvent, ImageGenCompletedEvent, ImageEditPartialImageEvent,
                 ImageEditCompletedEvent, StreamErrorEvent, *RESPONSE_STREAM_EVENTS],
        served={"ImageGenerateRequest.model": sorted(state.catalogue.models),
                "ImageEditRequest.model": sorted(m for m in state.catalogue.models if state.catalogue.profile(m).edits),
                "ImageGenerationTool.model": sorted(m for m in state.catalogue.models
                                                    if state.catalogue.profile(m).gpt)},
    )  # fmt: skip
    app.state.imageforge = state
    app.state.api_keys = ApiKeys(settings.api_keys)
    install_error_handlers(app)
    app.add_middleware(DrainMiddleware, drain=state.drain)
    app.add_middleware(RequestIdMiddleware, adopt=state.backend.adopt_request_id)
    app.include_router(images.router)
    app.include_router(edits.router)
    app.include_router(models.router)
    app.include_router(files.router)
    app.include_router(responses.router)
    app.include_router(playground.router)

    @app.get("/health", include_in_schema=False)
    async def health() -> dict[str, object]:
        """Liveness: the process answers (engines may still be loading)."""
        status = "draining" if state.drain.draining else "ok"
        body: dict[str, object] = {"status": status, "engines": state.engines.status()}
        replicas = state.engines.replicas()
        if replicas:  # a cluster: where each engine replica runs
            body["replicas"] = replicas
        return body

    @app.get("/ready", include_in_schema=False)
    async def ready() -> JSONResponse:
        """Readiness: every engine loaded and warmed, and not draining; 503 otherwise."""
        ok = state.engines.ready() and not state.drain.draining
        body = {"ready": ok, "draining": state.drain.draining, "engines": state.engines.status()}
        return JSONResponse(body, status_code=200 if ok else 503)

    metrics_keys = ApiKeys([*settings.api_keys, *([settings.metrics_key] if settings.metrics_key else [])])

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        """Prometheus' text format; it needs a key (an API key or the metrics key) whenever the server has one."""
        metrics_keys.check(request.headers.get("authorization"))
        page = state.metrics.render()
        if state.backend.metrics_page is not None:  # a cluster: every replica's series, labelled by replica
            page = await state.backend.metrics_page(page)
        return Response(page, media_type=CONTENT_TYPE)

    return app
