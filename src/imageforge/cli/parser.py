"""The ``imageforge`` command line's flags. Settings flags map one to one onto :class:`~imageforge.config.Settings`
fields (``settings_from``); request flags become the same fields a client would send, so ``imageforge generate``
and ``imageforge edit`` accept exactly what ``POST /v1/images/generations`` and ``/edits`` do.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from imageforge import __version__
from imageforge.cli.models import add_model_flags, add_pull_parser
from imageforge.config import EMBEDDED_ID, Settings

__all__ = ["build_parser", "settings_from"]


def _settings_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="model catalogue (TOML) [IMAGEFORGE_CONFIG]")
    p.add_argument("--data-dir", type=Path, help="data directory [IMAGEFORGE_DATA_DIR]")
    p.add_argument("--device", help="auto, cpu, cuda, cuda:N [IMAGEFORGE_DEVICE]")
    p.add_argument("--dtype", help="auto, float32, float16, bfloat16 [IMAGEFORGE_DTYPE]")
    p.add_argument("--threads", type=int, help="CPU threads for torch [IMAGEFORGE_THREADS]")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="[IMAGEFORGE_LOG_LEVEL]")


def settings_from(ns: argparse.Namespace) -> Settings:
    # Every flag whose dest is a Settings field maps onto it (a flag not given is None and leaves the default).
    overrides = {k: getattr(ns, k, None) for k in Settings.model_fields}
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def _request_args(p: argparse.ArgumentParser, what: str) -> None:
    """The flags ``generate`` and ``edit`` share: the request's fields, where the images go, and where they are made."""
    p.add_argument("-o", "--output", type=Path, help=f"output file (default {what}.<format>; n > 1 adds -1, -2, ...)")
    p.add_argument(
        "--model",
        help=f"model id (default: {EMBEDDED_ID} in-process; gpt-image-1 with --server, whatever that server serves "
        "under it)",
    )
    p.add_argument("--size", help="WxH or auto, as the model's API rules allow (default: the model's default)")
    p.add_argument("--quality", help="low, medium, high, auto (standard/hd for dall-e models)")
    p.add_argument("--background", choices=["transparent", "opaque", "auto"])
    p.add_argument("--complexity", choices=["low", "medium", "high"],
                   help="planning: 1, 4 or 8 candidate starts scored per image (default: the model's)")  # fmt: skip
    p.add_argument("--format", dest="output_format", choices=["png", "jpeg", "webp"], help="default: from -o")
    p.add_argument("--compression", dest="output_compression", type=int, help="0-100 (output_compression)")
    p.add_argument("--n", type=int, help="number of images (files get -1, -2, ... suffixes)")
    p.add_argument("--seed", type=int, help="seed of the first image (image i uses seed + i; in-process only)")
    p.add_argument("--partials", type=Path, metavar="DIR", help="also save the previews (partial images) in DIR")
    p.add_argument("--partial-images", type=int, metavar="K",
                   help="previews per image, 1-3 (default 2 with --partials or --server)")  # fmt: skip
    p.add_argument("--server", metavar="URL", help="send the request to a running ImageForge (or OpenAI) server")
    p.add_argument("--api-key", help="Bearer key for --server (default: $OPENAI_API_KEY)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for --server (600)")
    _settings_args(p)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="imageforge", description="Self-hosted, OpenAI-compatible image generation.")
    ap.add_argument("--version", action="version", version=f"imageforge {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="make images (in-process, or on a --server) and write them to files")
    gen.add_argument("prompt")
    _request_args(gen, "image")

    edit = sub.add_parser("edit", help="edit images (in-process, or on a --server) and write the results to files")
    edit.add_argument("prompt")
    edit.add_argument("-i", "--image", dest="images", type=Path, action="append", required=True,
                      help="image to edit; repeat for reference images (the first is the one edited)")  # fmt: skip
    edit.add_argument("--mask", type=Path,
                      help="PNG the size of the first image: its transparent pixels are redrawn")  # fmt: skip
    edit.add_argument("--input-fidelity", choices=["high", "low"], help="how much of the input is kept (low)")
    _request_args(edit, "edited")

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
    serve.add_argument("--batch-wait-alone", action="store_true", default=None,
                       help="wait --batch-wait-ms even when no other request is in the server")  # fmt: skip
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
    # Shared state for several replicas (docs/operations.md). The secrets (url_signing_key, postgres_dsn) are
    # environment-only: a flag's value is visible to every user of the machine in the process list.
    serve.add_argument(
        "--image-store", choices=["filesystem", "s3"], help="where url images live [IMAGEFORGE_IMAGE_STORE]"
    )
    serve.add_argument("--image-store-path", type=Path, help="shared directory of the filesystem image store")
    serve.add_argument("--s3-bucket", help="bucket of the s3 image store [IMAGEFORGE_S3_BUCKET]")
    serve.add_argument("--s3-prefix", help="key prefix inside the bucket")
    serve.add_argument("--s3-endpoint-url", help="S3-compatible endpoint (MinIO, R2, Ceph)")
    serve.add_argument("--s3-region", help="the bucket's region")
    serve.add_argument("--responses-store", choices=["sqlite", "postgres"],
                       help="stored responses: sqlite (one node) or postgres (IMAGEFORGE_POSTGRES_DSN)")  # fmt: skip
    serve.add_argument("--rate-limit-storage", help="limits storage URI: memory:// (default) or redis://host:port")
    for scope in ("key", "user"):
        for kind in ("requests", "images"):
            serve.add_argument(f"--{scope}-{kind}-per-minute", type=int, help=f"per {scope} (default: no limit)")
    serve.add_argument("--backend", choices=["process", "ray"],
                       help="process (default) or ray: engine replicas on Ray Serve (imageforge[ray])")  # fmt: skip
    serve.add_argument("--ray-address", help="Ray cluster to join (default: start one on this machine)")
    serve.add_argument("--ray-ingress-replicas", type=int, help="API replicas on the cluster (default 1)")
    serve.add_argument("--ray-proxy-location", choices=["HeadOnly", "EveryNode"], help="where Serve's proxy runs")
    add_model_flags(serve)
    _settings_args(serve)

    add_pull_parser(sub)
    models = sub.add_parser("models", help="list the served model ids")
    add_model_flags(models)
    _settings_args(models)
    return ap
