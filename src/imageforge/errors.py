"""ImageForge's one exception tree.

Every error a request can meet is one of these; ``api/errors.py`` turns them into OpenAI's envelope
``{"error": {"message", "type", "param", "code"}}`` (and, once a stream has started, an in-band ``error`` event),
and the CLI prints them. Nothing below the API layer raises an HTTP exception.

::

    ImageForgeError                      500 server_error
    ├── InvalidRequestError              400 invalid_request_error   (param names the field)
    │   ├── UnknownParameterError        400 invalid_request_error / unknown_parameter
    │   ├── UnsupportedParameterError    400 invalid_request_error / unsupported_parameter
    │   └── InvalidImageError            400 invalid_request_error / invalid_image
    ├── ModerationBlockedError           400 image_generation_user_error / moderation_blocked (+ moderation_details)
    │   └── ContentPolicyViolationError  400 invalid_request_error / content_policy_violation (DALL·E's shape)
    ├── AuthenticationError              401 invalid_request_error   (missing key; invalid_api_key for a wrong one)
    ├── NotFoundError                    404 invalid_request_error   (unknown URL, expired or tampered image URL)
    ├── ModelNotFoundError               404 invalid_request_error / model_not_found
    ├── RequestTooLargeError             413 invalid_request_error / request_too_large
    ├── RateLimitError                   429 requests / rate_limit_exceeded (Retry-After, x-ratelimit-*)
    │   └── QueueFullError               the engine's admission queue is full
    ├── ConfigurationError               500 server_error            (bad catalogue, unsafe checkpoint, ...)
    │   └── UnsafeCheckpointError        refused pickle checkpoint
    ├── EngineError                      500 server_error            (the engine failed while generating)
    │   └── OutOfMemoryError             500 server_error / out_of_memory (still too big after a retry at half batch)
    ├── GenerationTimeout                504 server_error / timeout  (the request_timeout_seconds setting passed)
    ├── ShuttingDownError                503 server_error / server_shutting_down (draining after SIGTERM)
    ├── EngineUnavailableError           503 server_error / engine_unavailable (a model that could not be loaded)
    ├── ServiceUnavailableError          503 server_error / service_unavailable (Redis, PostgreSQL unreachable;
    │                                        engine_replica_lost, engine_starting: a Ray cluster's engine replica)
    ├── PlannerError                     502 server_error / planner_error (the chat-completions planner failed)
    └── GenerationCancelled              499 cancelled               (client went away, or cancelled)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "AuthenticationError",
    "ConfigurationError",
    "ContentPolicyViolationError",
    "EngineError",
    "EngineUnavailableError",
    "GenerationCancelled",
    "GenerationTimeout",
    "ImageForgeError",
    "InvalidImageError",
    "InvalidRequestError",
    "LimitState",
    "ModelNotFoundError",
    "ModerationBlockedError",
    "NotFoundError",
    "OutOfMemoryError",
    "PlannerError",
    "QueueFullError",
    "RateLimitError",
    "RequestTooLargeError",
    "ServiceUnavailableError",
    "ShuttingDownError",
    "UnknownParameterError",
    "UnsafeCheckpointError",
    "UnsupportedParameterError",
    "reset_duration",
]


class ImageForgeError(Exception):
    """Base class: carries the HTTP status, OpenAI error ``type`` and ``code``, and the offending ``param``."""

    status: int = 500
    type: str = "server_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.extra: dict[str, object] = {}  # more keys of the wire error object (OpenAI's moderation_details)
        if code is not None:
            self.code = code

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, param={self.param!r}, code={self.code!r})"

    def __reduce__(self) -> tuple[object, ...]:
        # Pickled whole (subclasses take keyword-only arguments that Exception's own pickling drops): an engine
        # replica in another process (the Ray backend) sends its refusals and failures to the ingress as values.
        return _rebuild, (type(self), self.message, dict(self.__dict__))


def _rebuild(cls: type[ImageForgeError], message: str, state: dict[str, object]) -> ImageForgeError:
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    return err


class InvalidRequestError(ImageForgeError):
    status = 400
    type = "invalid_request_error"


class UnknownParameterError(InvalidRequestError):
    code = "unknown_parameter"


class UnsupportedParameterError(InvalidRequestError):
    code = "unsupported_parameter"


class InvalidImageError(InvalidRequestError):
    code = "invalid_image"


class ModerationBlockedError(ImageForgeError):
    """The safety system refused the prompt, an input image (stage ``input``) or a generated image (``output``).

    OpenAI's GPT image shape (reference §5.4): ``param`` null, and ``moderation_details`` beside the four keys.
    """

    status = 400
    type = "image_generation_user_error"
    code = "moderation_blocked"
    details_on_wire = True

    def __init__(self, message: str, *, stage: str, categories: list[str] | tuple[str, ...]) -> None:
        super().__init__(message)
        self.stage = stage
        self.categories = list(categories)
        if self.details_on_wire:
            self.extra = {"moderation_details": {"moderation_stage": stage, "categories": list(categories)}}


class ContentPolicyViolationError(ModerationBlockedError):
    """The same refusal in DALL·E's shape: ``content_policy_violation``, no ``moderation_details`` on the wire."""

    type = "invalid_request_error"
    code = "content_policy_violation"
    details_on_wire = False


class AuthenticationError(ImageForgeError):
    status = 401
    type = "invalid_request_error"


class NotFoundError(ImageForgeError):
    status = 404
    type = "invalid_request_error"


class RequestTooLargeError(ImageForgeError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


@dataclass(frozen=True)
class LimitState:
    """Where one limit stands for a caller: what the API layer writes as ``x-ratelimit-*`` headers."""

    kind: str  # "requests" or "images"
    limit: int | None  # per window; None where the limit is not a count (a refusal by queue time)
    remaining: int
    reset_seconds: float


class RateLimitError(ImageForgeError):
    """429 in OpenAI's shape (reference §5.5): the client should retry after ``retry_after`` seconds.

    ``limits`` are the limits that were hit; the API layer writes them as ``x-ratelimit-*`` headers (plain
    integers and durations like ``6m0s``, as OpenAI sends them) and ``Retry-After`` from ``retry_after``.
    """

    status = 429
    type = "requests"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: float, limits: tuple[LimitState, ...] = ()) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.limits = limits


def reset_duration(seconds: float) -> str:
    """OpenAI's format of ``x-ratelimit-reset-*`` headers: ``12ms``, ``1.5s``, ``6m0s``."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    if seconds < 60:
        return f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"
    minutes, rest = divmod(math.ceil(seconds), 60)
    return f"{minutes}m{rest}s"


class QueueFullError(RateLimitError):
    """Too many requests are waiting for one engine: refused at once instead of queuing without bound."""


class ModelNotFoundError(ImageForgeError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class ConfigurationError(ImageForgeError):
    """The server's own configuration is wrong (not the client's request)."""


class UnsafeCheckpointError(ConfigurationError):
    """A checkpoint that can only be loaded by unpickling (``.ckpt``, ``.bin``, ``.pt``) was refused."""


class EngineError(ImageForgeError):
    """The engine failed while generating."""


class OutOfMemoryError(EngineError):
    """The engine ran out of memory, and again at half the batch (or the request alone was too big)."""

    code = "out_of_memory"


class GenerationTimeout(ImageForgeError):
    """The request took longer than the server's ``request_timeout_seconds`` (queued and generating)."""

    status = 504
    code = "timeout"


class ShuttingDownError(ImageForgeError):
    """The server is draining after SIGTERM: in-flight requests finish, new ones are refused."""

    status = 503
    code = "server_shutting_down"


class EngineUnavailableError(ImageForgeError):
    status = 503
    code = "engine_unavailable"


class ServiceUnavailableError(ImageForgeError):
    """A service the server shares with its other replicas (the rate-limit Redis, the response store's
    PostgreSQL, an engine replica of a Ray cluster) cannot be reached: the request is refused, neither failed with
    a traceback nor let through. Retriable: the SDKs retry a 503 by themselves."""

    status = 503
    code = "service_unavailable"


class PlannerError(ImageForgeError):
    """The Responses API's planner (an external chat-completions server) failed or answered nonsense."""

    status = 502
    code = "planner_error"


class GenerationCancelled(ImageForgeError):
    """The job was cancelled between denoising steps (client disconnect, timeout, shutdown)."""

    status = 499
    type = "cancelled"
    code = "cancelled"
