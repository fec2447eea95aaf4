"""Everything the routes need, built once by the app factory from :class:`~imageforge.config.Settings`."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from starlette.types import Scope

from imageforge.api.lifecycle import Drain
from imageforge.config import Catalogue, Settings
from imageforge.metrics import Metrics
from imageforge.scheduler.gateway import EngineFleet, EngineGateway
from imageforge.serving.edits import EditsService
from imageforge.serving.generations import GenerationsService
from imageforge.serving.models import ModelsService
from imageforge.serving.pipeline import GenerationPipeline
from imageforge.serving.ratelimit import RateLimiter
from imageforge.serving.responses import ResponsesService
from imageforge.serving.variations import VariationsService
from imageforge.storage.images import ImageStore
from imageforge.storage.signing import UrlSigner

__all__ = ["AppState", "EngineBackend"]


@dataclass
class EngineBackend:
    """Where the engines run, as the app sees it: their lifecycle, the gateway jobs go through, and what differs
    behind a cluster's proxy (``imageforge.distributed`` builds the Ray Serve one)."""

    fleet: EngineFleet
    gateway: EngineGateway
    adopt_request_id: Callable[[Scope], str | None] | None = None  # the proxy's id, when a proxy writes the header
    metrics_page: Callable[[bytes], Awaitable[bytes]] | None = None  # this process's /metrics -> the page served


@dataclass
class AppState:
    settings: Settings
    catalogue: Catalogue
    engines: EngineFleet
    backend: EngineBackend
    store: ImageStore  # url images: filesystem or s3 (storage/images.py)
    signer: UrlSigner
    pipeline: GenerationPipeline
    generations: GenerationsService
    edits: EditsService
    variations: VariationsService
    models: ModelsService
    responses: ResponsesService
    metrics: Metrics
    limits: RateLimiter
    drain: Drain = field(default_factory=Drain)
    clock: Callable[[], float] = field(default=time.time)
