"""One audit line per generation request, and the usage it adds up to per API key and end-user.

The line is JSON on the ``imageforge.audit`` logger at INFO: request id, key id (a digest prefix, never the key),
end-user, model, size, n, outcome and timings; for a request moderation refused, the stage and the categories
(counted per key and end-user in ``imageforge_moderation_blocks``). Prompt text never appears at INFO.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field

from imageforge.metrics import Metrics

__all__ = ["RequestAudit"]

log = logging.getLogger("imageforge.audit")


@dataclass
class RequestAudit:
    request_id: str
    key_id: str = "-"
    endpoint: str = "images.generations"
    user: str | None = None
    model: str = ""
    size: str = ""
    quality: str = ""
    n: int = 0
    stream: bool = False
    outcome: str = "ok"  # ok, cancelled, timeout, error code of the failure
    status: int = 200
    queue_ms: float = 0.0
    run_ms: float = 0.0
    encode_ms: float = 0.0
    moderation_ms: float = 0.0  # every check of the request, input and output (partial images included)
    moderation_stage: str | None = None  # set when moderation refused the request
    moderation_categories: list[str] | None = None
    total_ms: float = 0.0
    started: float = field(default_factory=time.monotonic, repr=False)

    def emit(
        self, metrics: Metrics, *, pixels: int = 0, steps: int = 0, text_tokens: int = 0, image_tokens: int = 0
    ) -> None:
        """Log the line and count the request (usage only for delivered images)."""
        self.total_ms = (time.monotonic() - self.started) * 1000
        metrics.request_seconds.labels(self.endpoint, self.outcome).observe(self.total_ms / 1000)
        if self.outcome == "ok":
            metrics.record_usage(self.key_id, self.user, images=self.n, pixels=pixels, steps=steps,
                                 text_tokens=text_tokens, image_tokens=image_tokens)  # fmt: skip
        if self.moderation_stage is not None:
            metrics.record_block(self.key_id, self.user, self.moderation_stage, self.moderation_categories or [])
        record = {k: v for k, v in asdict(self).items() if k != "started"}
        for k in ("queue_ms", "run_ms", "encode_ms", "moderation_ms", "total_ms"):
            record[k] = round(record[k], 1)
        log.info("%s", json.dumps(record, separators=(",", ":")))
