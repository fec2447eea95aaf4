"""Configuration: one :class:`Settings` object built at start-up, and the model catalogue.

Nothing here runs at import time (DESIGN.md §4.6): the CLI builds ``Settings`` from flags and the environment
(``IMAGEFORGE_`` prefix) and passes it down. The catalogue maps each served model id to an engine, that engine's
options and an API profile. With no catalogue file, the embedded model is served under its own id and under the
OpenAI names, each with that OpenAI model's rules. A TOML file adds or replaces entries::

    [models."sd-turbo"]
    engine = "diffusers"
    profile = "gpt-image-1"
    [models."sd-turbo".options]
    model = "/models/sd-turbo"          # a diffusers directory, a .safetensors file, or a hub id
    guidance_scale = 0.0
    quality_steps = { low = 1, medium = 2, high = 4 }

``--model SOURCE`` / ``--model ID=SOURCE`` (``IMAGEFORGE_MODELS``, comma-separated) adds entries without a file:
the family is detected from the checkpoint (``engines/families.py``, ``engines/sources.py``) and its recommended
settings apply. They come after the file's entries (and replace any of the same id). The **first** ``--model``
also answers every OpenAI name (``gpt-image-1``, ``dall-e-3``, ... and their aliases), each with that name's own
profile rules, so an unchanged OpenAI client gets the real model; a name the catalogue file sets itself keeps the
file's entry (explicit beats implied). ``imageforge-emoji`` stays the embedded model.
"""

from __future__ import annotations

import base64
import binascii
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from imageforge.errors import ConfigurationError, ModelNotFoundError
from imageforge.profiles import PROFILES, Profile, get_profile

__all__ = [
    "Catalogue",
    "ModelEntry",
    "ReplicaOptions",
    "Settings",
    "decode_signing_key",
    "default_catalogue",
    "load_catalogue",
]

EMBEDDED_ID = "imageforge-emoji"
OPENAI_NAMES = (
    "gpt-image-1", "gpt-image-1-mini", "gpt-image-1.5", "gpt-image-2", "gpt-image-2.5-sunburst", "gpt-image-2.5-flare",
    "gpt-image-2.6-sunburst", "gpt-image-2.6-flare", "dall-e-2", "dall-e-3",
)  # fmt: skip
# Other ids the SDK's ImageModel literal carries that follow an existing profile's rules (reference §0, §1.3,
# §11.1): dated snapshots of a model follow the model.
OPENAI_ALIASES = {
    "gpt-image-2-2026-04-21": "gpt-image-2",
    "gpt-image-2.5-sunburst-2026-09-08": "gpt-image-2.5-sunburst",
    "gpt-image-2.5-flare-2026-09-08": "gpt-image-2.5-flare",
    "chatgpt-image-latest": "gpt-image-1.5",
}
# The Responses image tool's model when the tool names none: the SDK's documented default (openai 3.57).
RESPONSES_DEFAULT_IMAGE_MODEL = "gpt-image-2.6-sunburst"


_SIGNING_KEY_BYTES = 32


def decode_signing_key(text: str) -> bytes:
    """``url_signing_key``'s bytes: hex if it is all hex digits, else base64 (standard or URL-safe)."""
    text = text.strip()
    try:
        if len(text) % 2 == 0 and all(c in "0123456789abcdefABCDEF" for c in text):
            key = bytes.fromhex(text)
        else:
            key = base64.b64decode(text.replace("-", "+").replace("_", "/"), validate=True)
    except (ValueError, binascii.Error):
        key = b""
    if len(key) < _SIGNING_KEY_BYTES:
        raise ConfigurationError(
            f"url_signing_key (IMAGEFORGE_URL_SIGNING_KEY) must be hex or base64 of at least {_SIGNING_KEY_BYTES} "
            "random bytes, e.g. the output of `openssl rand -hex 32`",
            param="url_signing_key",
        )
    return key


class Settings(BaseSettings):
    """Every setting; CLI flags map one to one onto these fields."""

    model_config = SettingsConfigDict(env_prefix="IMAGEFORGE_", extra="forbid")

    data_dir: Path = Field(default=Path("imageforge-data"), description="where stored images and state live")
    config: Path | None = Field(default=None, description="model catalogue (TOML)")
    models: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="models to serve: SOURCE or ID=SOURCE (hub id, diffusers directory or .safetensors file; "
        "environment: comma-separated); the first also answers the OpenAI model names",
    )
    offline: bool = Field(default=False, description="use only local files and the Hugging Face cache (no network)")
    device: str = Field(default="auto", description="auto, cpu, cuda or cuda:N (engines that support it)")
    dtype: str = Field(default="auto", description="auto, float32, float16 or bfloat16 (diffusers engines)")
    threads: int | None = Field(default=None, ge=1, description="CPU threads for torch (default: torch's choice)")
    log_level: Literal["debug", "info", "warning", "error"] = Field(default="info")

    # Serving (``imageforge serve``).
    host: str = Field(default="127.0.0.1", description="address to bind")
    port: int = Field(default=8000, ge=0, le=65535)
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="accepted Bearer keys (environment: comma-separated); none = any key"
    )
    allow_unauthenticated: bool = Field(
        default=False, description="allow binding a non-loopback address with no API keys configured"
    )
    public_base_url: str | None = Field(
        default=None, description="base of image URLs (default: the scheme and host the client reached)"
    )
    url_ttl_seconds: int = Field(default=3600, ge=1, description="lifetime of response_format=url images")
    sweep_interval_seconds: float = Field(default=60.0, gt=0, description="how often expired images are deleted")
    # Where url images live, and the key that signs their URLs: shared by every replica of a cluster (issue 18;
    # docs/operations.md, "Shared image store").
    image_store: Literal["filesystem", "s3"] = Field(default="filesystem", description="where url images are kept")
    image_store_path: Path | None = Field(
        default=None, description="the filesystem store's directory (default: data_dir/images); may be shared"
    )
    s3_bucket: str | None = Field(default=None, description="bucket of the s3 image store")
    s3_prefix: str = Field(default="", description="key prefix inside s3_bucket")
    s3_endpoint_url: str | None = Field(default=None, description="S3-compatible endpoint (MinIO, R2, Ceph)")
    s3_region: str | None = Field(default=None, description="the bucket's region (default: boto3's)")
    url_signing_key: SecretStr | None = Field(
        default=None,
        description="key that signs image URLs, hex or base64 of at least 32 bytes; the same on every replica "
        "(default: a key file in data_dir)",
    )
    queue_limit: int = Field(default=64, ge=1, description="requests waiting per engine before 429")
    max_queue_seconds: float | None = Field(
        default=None, ge=0,
        description="how long a request may wait for the work ahead of it (default: 1/4 of its unloaded run time)",
    )  # fmt: skip
    max_batch: int | None = Field(
        default=None, ge=1, description="images per engine call across requests (default: the engine's; 1 = off)"
    )
    batch_wait_ms: float = Field(
        default=5.0, ge=0, description="how long a request may wait for compatible ones to share its batch"
    )
    batch_wait_alone: bool = Field(
        default=False,
        description="wait batch_wait_ms even when no other request is in the server (for clients whose bursts "
        "connect over longer than a request's validation)",
    )
    request_timeout_seconds: float = Field(
        default=580.0, ge=0,
        description="longest a generation may queue and run (0 = no limit); then 504 (under the SDK's 600 s)",
    )  # fmt: skip
    warmup: bool = Field(default=True, description="run one tiny generation per engine before /ready says ready")
    drain_timeout_seconds: float = Field(
        default=30.0, ge=0, description="on SIGTERM, how long in-flight requests may take to finish"
    )
    key_requests_per_minute: int | None = Field(default=None, ge=1, description="per API key (default: no limit)")
    key_images_per_minute: int | None = Field(default=None, ge=1, description="per API key (default: no limit)")
    user_requests_per_minute: int | None = Field(
        default=None, ge=1, description="per end-user (`user` or `safety_identifier` field; default: no limit)"
    )
    user_images_per_minute: int | None = Field(default=None, ge=1, description="per end-user (default: no limit)")
    rate_limit_storage: str = Field(
        default="memory://",
        description="where rate-limit windows are counted: memory:// (this process) or redis://host:port/db, "
        "shared by every replica (docs/operations.md, 'Shared rate limits')",
    )
    encode_pool: Literal["thread", "process"] = Field(
        default="thread", description="where images are encoded and base64'd off the event loop (BENCHMARKS.md)"
    )
    encode_workers: int = Field(default=2, ge=1, description="encode pool size")
    metrics_max_users: int = Field(default=1000, ge=0, description="distinct end-users labelled in /metrics")
    metrics_key: str | None = Field(
        default=None, description="Bearer key that may read /metrics (besides the API keys, which always may)"
    )
    metrics_user_labels: Literal["hashed", "plain"] = Field(
        default="hashed", description="end-users in /metrics: pseudonyms (u_ + SHA-256 prefix) or their ids"
    )
    max_body_bytes: int = Field(default=1 << 20, ge=1024, description="largest JSON request body")
    max_upload_bytes: int = Field(
        default=52 << 20,
        ge=1024,
        description="largest /v1/images/edits or /variations body, refused while it streams in (one image may be "
        "up to 50 MB)",
    )
    default_gpt_model: str = Field(
        default="gpt-image-1", description="the model an omitted `model` means when a GPT-only parameter is sent"
    )

    # Moderation (docs/moderation.md; thresholds in moderation/policy.py).
    moderation_input: bool = Field(default=True, description="check prompts and input images (stage input)")
    moderation_output: bool = Field(
        default=True, description="check every generated image, partial images included (stage output)"
    )
    moderation_auto: Annotated[dict[str, float | Literal["off"]], NoDecode] = Field(
        default_factory=dict,
        description="threshold overrides for moderation=auto: category=0.6,image=0.7 or JSON ('off' disables one)",
    )
    moderation_low: Annotated[dict[str, float | Literal["off"]], NoDecode] = Field(
        default_factory=dict, description="threshold overrides for moderation=low (sexual/minors is never relaxed)"
    )
    moderation_lexicon: Path | None = Field(default=None, description="a prompt lexicon of your own (TOML)")
    moderation_threads: int = Field(default=2, ge=1, description="CPU threads of the image classifier")
    moderation_plugins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="installed moderation plug-ins to enable (entry point names)"
    )

    # The Responses API (``/v1/responses``).
    max_responses_body_bytes: int = Field(
        default=50 << 20, ge=1024, description="largest /v1/responses body (input images travel inside it)"
    )
    planner_url: str | None = Field(
        default=None, description="an OpenAI-compatible chat-completions base URL that plans Responses requests"
    )
    planner_models: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="request models the planner_url answers (comma-separated; * = all; id=upstream renames)",
    )
    planner_api_key: str | None = Field(default=None, description="Bearer key sent to planner_url")
    planner_timeout_seconds: float = Field(default=60.0, gt=0)
    responses_store: Literal["sqlite", "postgres"] = Field(
        default="sqlite",
        description="where stored responses live: sqlite (data_dir, one node) or postgres (postgres_dsn, shared by "
        "every replica; docs/operations.md, 'Shared response store')",
    )
    postgres_dsn: SecretStr | None = Field(
        default=None, description="PostgreSQL connection string (libpq DSN or URI) of responses_store=postgres"
    )
    responses_retention_seconds: int = Field(
        default=30 * 24 * 3600, ge=0, description="how long stored responses (and their images) are kept; 0 = ever"
    )
    responses_max_input_tokens: int = Field(
        default=272_000, ge=1,
        description="longest conversation a Responses request may send, in tokens (gpt-5's input limit: its 400k "
        "context less 128k of output)",
    )  # fmt: skip
    # Past one machine (``serve --backend ray``; docs/operations.md, "Running on a Ray cluster").
    backend: Literal["process", "ray"] = Field(
        default="process", description="process: engines in this process; ray: engine replicas on Ray Serve"
    )
    ray_address: str | None = Field(
        default=None, description="Ray cluster to join (ray://host:10001, auto, host:6379); default: start one here"
    )
    ray_ingress_replicas: int = Field(default=1, ge=1, description="API (ingress) replicas on the Ray cluster")
    ray_ingress_cpus: float = Field(default=1.0, ge=0, description="CPUs reserved by each ingress replica")
    ray_ingress_max_ongoing: int = Field(
        default=512, ge=1, description="requests (open streams included) one ingress replica holds at once"
    )
    ray_proxy_location: Literal["HeadOnly", "EveryNode"] = Field(
        default="EveryNode", description="where Serve's HTTP proxy runs: every node with a replica, or the head"
    )
    responses_finished_status: Literal["completed", "generating"] = Field(
        default="completed",
        description="status of a finished image_generation_call; 'generating' mimics the live API (OpenAI-DotNet)",
    )

    @field_validator("moderation_auto", "moderation_low", mode="before")
    @classmethod
    def _thresholds(cls, value: Any) -> Any:
        """``sexual=0.6,image=off`` (the CLI and environment) or a JSON object."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("{"):
                return json.loads(text)
            pairs = [p.split("=", 1) for p in text.split(",") if p.strip()]
            if any(len(p) != 2 for p in pairs):
                raise ValueError(f"expected category=threshold pairs separated by commas, got {value!r}")
            return {k.strip(): v.strip() for k, v in pairs}
        return value

    @field_validator("api_keys", "planner_models", "moderation_plugins", "models", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [k.strip() for k in value.split(",") if k.strip()]
        return value

    @field_validator("url_signing_key")
    @classmethod
    def _signing_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            decode_signing_key(value.get_secret_value())  # raises ConfigurationError naming the setting
        return value

    def engine_defaults(self) -> dict[str, Any]:
        """Options every engine gets unless its catalogue entry sets them (and only if it takes them)."""
        return {"device": self.device, "dtype": self.dtype}


class ReplicaOptions(BaseModel):
    """How an engine is deployed on a Ray Serve cluster (``serve --backend ray``); one process ignores it.

    Ids that share an engine share its deployment, so they must agree on these (or leave them at the defaults).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    num_replicas: int = Field(default=1, ge=1, description="fixed replica count (unless max_replicas is set)")
    min_replicas: int = Field(default=1, ge=0, description="autoscaling lower bound (0 allows scale-to-zero)")
    max_replicas: int | None = Field(default=None, ge=1, description="set: autoscale between min and max")
    target_ongoing_requests: float | None = Field(default=None, gt=0, description="autoscaling target per replica")
    num_gpus: float | None = Field(default=None, ge=0, description="GPUs per replica (default: 1 if any, else 0)")
    num_cpus: float = Field(default=1.0, ge=0, description="CPUs per replica (encode and decode threads)")
    accelerator_type: str | None = Field(default=None, description="Ray accelerator type, e.g. H100 or A10G")
    max_ongoing_requests: int | None = Field(default=None, ge=1, description="default: 2 x the engine's max batch")


class ModelEntry(BaseModel):
    """One served model id."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    engine: str
    profile: str = "imageforge"
    options: dict[str, Any] = Field(default_factory=dict)
    description: str = ""
    replicas: ReplicaOptions = Field(default_factory=ReplicaOptions)
    # The complexity a request that leaves it out gets (OpenAI: "the image model's configured default"); above
    # "low" it needs an engine that plans (capabilities.planning), checked when the engine is created.
    complexity: Literal["low", "medium", "high"] = "low"

    def engine_key(self) -> str:
        """Entries with equal keys share one engine instance (one copy of the weights)."""
        return json.dumps([self.engine, self.options], sort_keys=True, default=str)


class _CatalogueFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    include_defaults: bool = True
    models: dict[str, ModelEntry] = Field(default_factory=dict)


@dataclass(frozen=True)
class Catalogue:
    models: dict[str, ModelEntry] = field(default_factory=dict)

    def entry(self, model_id: str) -> ModelEntry:
        try:
            return self.models[model_id]
        except KeyError:
            raise ModelNotFoundError(
                f"The model '{model_id}' does not exist or you do not have access to it.", param="model"
            ) from None

    def profile(self, model_id: str) -> Profile:
        return get_profile(self.entry(model_id).profile)


def default_catalogue() -> Catalogue:
    """The embedded model under its own id and every OpenAI name; all share one engine instance."""
    models = {EMBEDDED_ID: ModelEntry(engine="embedded", profile="imageforge")}
    for name in OPENAI_NAMES:
        models[name] = ModelEntry(engine="embedded", profile=name)
    for alias, profile in OPENAI_ALIASES.items():
        models[alias] = ModelEntry(engine="embedded", profile=profile)
    return Catalogue(models)


def load_catalogue(settings: Settings) -> Catalogue:
    """The default entries, then the catalogue file's, then the ``--model`` entries (see the module docstring)."""
    base = default_catalogue()
    file_models: dict[str, ModelEntry] = {}
    include_defaults = True
    if settings.config is not None:
        file_models, include_defaults = _read_catalogue_file(settings.config)
    models = dict(base.models) if include_defaults else {}
    models.update(file_models)
    if settings.models:
        models.update(_cli_models(settings, file_models))
    return Catalogue(models)


def _cli_models(settings: Settings, file_models: dict[str, ModelEntry]) -> dict[str, ModelEntry]:
    # Imported here: sources builds ModelEntry objects from this module (and reads checkpoints, which only
    # happens when --model is used).
    from imageforge.engines.sources import entries_for

    entries = entries_for(settings.models, settings)
    first = next(iter(entries.values()))
    openai = {name: name for name in OPENAI_NAMES} | OPENAI_ALIASES
    for name, profile in openai.items():
        if name in entries:  # `--model dall-e-3=...` names it: that name's rules still apply
            entries[name] = entries[name].model_copy(update={"profile": profile})
        elif name not in file_models:
            entries[name] = first.model_copy(update={"profile": profile})
    return entries


def _read_catalogue_file(path: Path) -> tuple[dict[str, ModelEntry], bool]:
    try:
        raw = tomllib.loads(Path(path).read_text())
        parsed = _CatalogueFile.model_validate(raw)
    except (OSError, tomllib.TOMLDecodeError, ValidationError) as exc:
        raise ConfigurationError(f"cannot read model catalogue {path}: {exc}") from exc
    for model_id, entry in parsed.models.items():
        if entry.profile not in PROFILES:
            raise ConfigurationError(
                f"model {model_id!r}: unknown profile {entry.profile!r}; known: {', '.join(sorted(PROFILES))}"
            )
    return dict(parsed.models), parsed.include_defaults
