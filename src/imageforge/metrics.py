"""What ``/metrics`` exposes (prometheus-client), one :class:`Metrics` per app.

A registry of its own per app, never the process-global one, so several apps in one process (tests, benchmarks)
count separately. The scheduler records queueing, batching and engine time; the serving layer records encoding,
requests, rate limiting and usage per API key and end-user.

End-user ids (the ``user`` / ``safety_identifier`` fields) come from clients, so their number is unbounded: past
``max_users`` distinct ids, further ones are counted under ``user="other"`` and a label set never grows without
limit. They are also personal data, and ``/metrics`` is read by more people than the audit log: by default a label
is a pseudonym, ``u_`` and the first 12 hex digits of the id's SHA-256 (an operator finds a user's series by
hashing the id; a reader of the page learns no ids). ``user_labels="plain"`` keeps the ids themselves.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["CONTENT_TYPE", "Metrics", "UserLabels", "hashed_user"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
_BATCH = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)


UserLabels = Literal["hashed", "plain"]


def hashed_user(user: str) -> str:
    """The pseudonym an end-user id is labelled with by default (``u_`` + 12 hex digits of its SHA-256)."""
    return "u_" + hashlib.sha256(user.encode("utf-8", "surrogatepass")).hexdigest()[:12]


class Metrics:
    def __init__(self, max_users: int = 1000, user_labels: UserLabels = "hashed") -> None:
        r = self.registry = CollectorRegistry()
        self.max_users = max_users
        self.user_labels = user_labels
        self._users: set[str] = set()
        self._lock = threading.Lock()
        self.queue_depth = Gauge("imageforge_queue_depth", "Jobs waiting for an engine", ["engine"], registry=r)
        self.running = Gauge("imageforge_running_jobs", "Jobs in the engine's current batch", ["engine"], registry=r)
        self.batch_images = Histogram(
            "imageforge_batch_images", "Images per engine call", ["engine"], buckets=_BATCH, registry=r
        )
        self.batch_jobs = Histogram(
            "imageforge_batch_jobs", "Requests per engine call", ["engine"], buckets=_BATCH, registry=r
        )
        self.queue_seconds = Histogram(
            "imageforge_queue_seconds", "Time a job waited before its batch started", ["engine"], buckets=_LATENCY,
            registry=r,
        )  # fmt: skip
        self.run_seconds = Histogram(
            "imageforge_run_seconds", "Engine time of a batch", ["engine"], buckets=_LATENCY, registry=r
        )
        self.encode_seconds = Histogram(
            "imageforge_encode_seconds", "Encoding and base64 of one image", ["format"], buckets=_LATENCY, registry=r
        )
        self.request_seconds = Histogram(
            "imageforge_request_seconds", "Request wall time, by endpoint and outcome", ["endpoint", "outcome"],
            buckets=_LATENCY, registry=r,
        )  # fmt: skip
        self.images = Counter("imageforge_images", "Images by model and outcome", ["model", "outcome"], registry=r)
        self.request_steps = Counter(
            "imageforge_request_steps",
            "Denoising steps computed, one per request of a batch per step (a dropped request stops counting)",
            ["engine"],
            registry=r,
        )
        self.plan_drafts = Counter(
            "imageforge_plan_drafts",
            "Candidate drafts that planning (complexity medium/high) ran before drawing, by model",
            ["model"],
            registry=r,
        )
        self.cancelled_steps = Counter(
            "imageforge_cancelled_steps",
            "Denoising steps run for images whose request was already cancelled (wasted work)",
            ["engine"],
            registry=r,
        )
        self.oom_retries = Counter(
            "imageforge_oom_retries", "Batches retried at half size after running out of memory", ["engine"], registry=r
        )
        self.isolation_retries = Counter(
            "imageforge_isolation_retries",
            "Batches whose engine call failed and whose jobs were run again one by one (only a failing one fails)",
            ["engine"],
            registry=r,
        )
        self.rate_limited = Counter(
            "imageforge_rate_limited", "Requests refused with 429, by reason", ["reason"], registry=r
        )
        self.moderation_seconds = Histogram(
            "imageforge_moderation_seconds", "Time of one moderation check, by stage", ["stage"], buckets=_LATENCY,
            registry=r,
        )  # fmt: skip
        self.moderation_blocks = Counter(
            "imageforge_moderation_blocks",
            "Requests refused by moderation, per API key, end-user, stage and category",
            ["key", "user", "stage", "category"],
            registry=r,
        )
        usage = ["key", "user"]
        self.usage_requests = Counter("imageforge_usage_requests", "Requests served", usage, registry=r)
        self.usage_images = Counter("imageforge_usage_images", "Images delivered", usage, registry=r)
        self.usage_pixels = Counter("imageforge_usage_pixels", "Pixels delivered", usage, registry=r)
        self.usage_steps = Counter("imageforge_usage_steps", "Denoising steps run for delivered images", usage,
                                   registry=r)  # fmt: skip
        self.usage_tokens = Counter(
            "imageforge_usage_tokens", "Tokens (input text, output image) of delivered requests", [*usage, "kind"],
            registry=r,
        )  # fmt: skip

    def user_label(self, user: str | None) -> str:
        """The label an end-user id is counted under (bounded; see the module docstring)."""
        if not user:
            return "-"
        # A label must be valid UTF-8, or the whole page fails to render for everyone (issue 15).
        user = hashed_user(user) if self.user_labels == "hashed" else _valid_text(user)
        with self._lock:
            if user in self._users:
                return user
            if len(self._users) < self.max_users:
                self._users.add(user)
                return user
        return "other"

    def record_usage(
        self, key: str, user: str | None, *, images: int, pixels: int, steps: int, text_tokens: int, image_tokens: int
    ) -> None:
        labels = (key, self.user_label(user))
        self.usage_requests.labels(*labels).inc()
        self.usage_images.labels(*labels).inc(images)
        self.usage_pixels.labels(*labels).inc(pixels)
        self.usage_steps.labels(*labels).inc(steps)
        self.usage_tokens.labels(*labels, "text").inc(text_tokens)
        self.usage_tokens.labels(*labels, "image").inc(image_tokens)

    def record_block(self, key: str, user: str | None, stage: str, categories: list[str]) -> None:
        label = self.user_label(user)
        for category in categories:
            self.moderation_blocks.labels(key, label, stage, category).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _valid_text(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
