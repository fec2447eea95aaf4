"""Everything the routes need, built once by the app factory from :class:`~imageforge.config.Settings`."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from imageforge.api.lifecycle import Drain
from imageforge.config import Catalogue, Settings
from imageforge.metrics import Metrics
from imageforge.scheduler.pool import EnginePool
from imageforge.serving.edits import EditsService
from imageforge.serving.generations import GenerationsService
from imageforge.serving.models import ModelsService
from imageforge.serving.pipeline import GenerationPipeline
from imageforge.serving.ratelimit import RateLimiter
from imageforge.serving.responses import ResponsesService
from imageforge.serving.variations import VariationsService
from imageforge.storage.images import ImageStore
from imageforge.storage.signing import UrlSigner

__all__ = ["AppState"]


@dataclass
class AppState:
    settings: Settings
    catalogue: Catalogue
    engines: EnginePool
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
