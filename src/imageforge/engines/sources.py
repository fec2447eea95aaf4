"""Where a served model's files come from: ``--model`` specs, hub downloads, and the catalogue entries they make.

A spec is ``SOURCE`` or ``ID=SOURCE``; SOURCE is a hub id (``org/name``), a diffusers directory, or a
``.safetensors`` file. Without ``ID=`` the id is the source's last path component, lower-cased, without
``.safetensors`` (``stabilityai/sdxl-turbo`` -> ``sdxl-turbo``).

Hub models are fetched by ``huggingface_hub.snapshot_download`` into the standard Hugging Face cache (resumable,
with its own progress bars), and only what the pipeline loads: the components ``model_index.json`` lists, their
configs, tokenizer files and safetensors weights (one variant, or the plain files), never pickles. Offline
(``offline=True`` or ``HF_HUB_OFFLINE=1``) only the cache is used. Framework-free: no torch, no FastAPI.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from imageforge.config import ModelEntry, Settings
from imageforge.engines.detection import Detection, detect_directory, detect_single_file
from imageforge.engines.diffusers_loading import PICKLE_SUFFIXES
from imageforge.errors import ConfigurationError, UnsafeCheckpointError

__all__ = [
    "ModelSpec",
    "detect",
    "entries_for",
    "is_offline",
    "locate",
    "parse_spec",
    "pipeline_files",
    "preview_cached",
    "pull",
    "pull_preview",
]

log = logging.getLogger(__name__)

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
# Files a pipeline loads besides weights: configs, tokenizers (CLIP vocab/merges, T5/Gemma sentencepiece).
_SIDE_FILES = (".json", ".txt", ".model", ".tiktoken")
_CONFIG_PATTERNS = ["model_index.json", *(f"*/*{s}" for s in _SIDE_FILES)]
_NEVER = [f"*{s}" for s in sorted(PICKLE_SUFFIXES)] + ["*.msgpack", "*.h5", "*.onnx", "*.onnx_data", "*.gguf"]
_PREVIEW_FILES = ["config.json", "diffusion_pytorch_model.safetensors"]  # AutoencoderTiny repos (TAESD family)


@dataclass(frozen=True)
class ModelSpec:
    model_id: str
    source: str  # hub id as given, or the resolved absolute path
    kind: Literal["hub", "directory", "file"]


def parse_spec(spec: str) -> ModelSpec:
    """``SOURCE`` or ``ID=SOURCE``. A left side with a path separator is part of a path, not an id."""
    text = spec.strip()
    model_id: str | None = None
    left, sep, right = text.partition("=")
    if sep and "/" not in left and "\\" not in left:
        model_id, text = left.strip(), right.strip()
        if not model_id or not text:
            raise ConfigurationError(f"--model {spec!r}: expected SOURCE or ID=SOURCE, with neither side empty")
    if not text:
        raise ConfigurationError("--model: empty model source")
    kind, source = _classify(text)
    if model_id is None:
        model_id = re.sub(r"\.safetensors$", "", Path(source).name.lower())
    if not _ID.match(model_id):
        raise ConfigurationError(
            f"--model {spec!r}: {model_id!r} is not a usable model id (letters, digits, '.', '_', '-', ':'); "
            "name it with ID=SOURCE"
        )
    return ModelSpec(model_id, source, kind)


def _classify(source: str) -> tuple[Literal["hub", "directory", "file"], str]:
    path = Path(source).expanduser()
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise UnsafeCheckpointError(
            f"{path.name}: pickle checkpoints ({', '.join(sorted(PICKLE_SUFFIXES))}) are refused because loading "
            "them can run arbitrary code; use a .safetensors file or a diffusers directory"
        )
    if path.is_dir():
        return "directory", str(path.resolve())
    if path.is_file():
        if path.suffix.lower() != ".safetensors":
            raise ConfigurationError(f"{path}: a single-file checkpoint must be a .safetensors file")
        return "file", str(path.resolve())
    if source.lower().endswith(".safetensors"):
        raise ConfigurationError(f"{source}: no such .safetensors file")
    if path.is_absolute() or source.startswith((".", "~")) or source.count("/") != 1:
        raise ConfigurationError(f"model source {source!r}: no such file or directory, and not a hub id (org/name)")
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id  # type: ignore[attr-defined]  # in its __all__

    try:
        validate_repo_id(source)
    except HFValidationError as exc:
        raise ConfigurationError(f"model source {source!r}: not a local path, nor a valid hub id ({exc})") from exc
    return "hub", source


def is_offline(offline: bool) -> bool:
    """Offline by flag or by huggingface_hub's own ``HF_HUB_OFFLINE`` (read when called, never at import)."""
    from huggingface_hub import constants

    return offline or bool(constants.HF_HUB_OFFLINE)


def _cache_dir() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def _not_available(repo_id: str, tried: str, why: str) -> ConfigurationError:
    return ConfigurationError(
        f"model {repo_id!r}: {tried}, but {why}. The Hugging Face cache searched is {_cache_dir()}. Pass a local "
        "diffusers directory or .safetensors file instead, or run `imageforge pull "
        f"{repo_id}` on a machine with network access (and copy its cache here, or point HF_HOME at it)."
    )


def _cached_snapshot(repo_id: str) -> Path | None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except LocalEntryNotFoundError:
        return None


def _missing_weights(snapshot: Path) -> list[str]:
    """Components with a model config but no safetensors (a snapshot that holds only configs so far)."""
    index = _read_index(snapshot)
    return sorted(
        name
        for name, spec in index.items()
        if not name.startswith("_")
        and isinstance(spec, list)
        and (snapshot / name / "config.json").is_file()
        and not any((snapshot / name).glob("*.safetensors"))
    )


def _read_index(snapshot: Path) -> dict[str, Any]:
    try:
        index = json.loads((snapshot / "model_index.json").read_text())
    except FileNotFoundError:
        raise ConfigurationError(
            f"{snapshot} holds no model_index.json: not a diffusers pipeline (single-file checkpoints on the hub: "
            "download the .safetensors file and pass its path)"
        ) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigurationError(f"cannot read {snapshot / 'model_index.json'}: {exc}") from exc
    return index if isinstance(index, dict) else {}


def pull(source: str, *, offline: bool, variant: str | None = None) -> Path:
    """A hub model's local snapshot, downloading what the pipeline needs unless offline. Local paths pass through."""
    kind, resolved = _classify(source)
    if kind != "hub":
        return Path(resolved)
    if is_offline(offline):
        snapshot = _cached_snapshot(resolved)
        if snapshot is None:
            raise _not_available(resolved, "offline mode, so only the cache was searched", "it is not cached")
        missing = _missing_weights(snapshot)
        if missing:
            raise _not_available(
                resolved, "offline mode, so only the cache was searched", f"the cache has no weights for "
                f"{', '.join(missing)}"
            )  # fmt: skip
        return snapshot
    return _download(resolved, variant)


def _download(repo_id: str, variant: str | None) -> Path:
    from huggingface_hub import hf_hub_download, list_repo_files, snapshot_download
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    try:
        files = list_repo_files(repo_id)
        if "model_index.json" not in files:
            raise ConfigurationError(
                f"model {repo_id!r} is not a diffusers pipeline (no model_index.json); download its .safetensors "
                "file and pass the path"
            )
        index = json.loads(Path(hf_hub_download(repo_id, "model_index.json")).read_text())
        patterns = pipeline_files(files, index, variant)
        log.info("downloading %s: %d files (variant %s)", repo_id, len(patterns), variant or "none")
        return Path(snapshot_download(repo_id, allow_patterns=patterns, ignore_patterns=_NEVER))
    except GatedRepoError as exc:
        raise ConfigurationError(
            f"model {repo_id!r} is gated: accept its licence on huggingface.co and log in (`hf auth login`)"
        ) from exc
    except RepositoryNotFoundError as exc:
        raise ConfigurationError(f"model {repo_id!r}: no such repository on the Hugging Face hub") from exc
    except ConfigurationError:
        raise
    except Exception as exc:  # connection refused, DNS, timeouts, hub errors: each means "cannot reach the hub"
        cached = _cached_snapshot(repo_id)
        if cached is not None and not _missing_weights(cached):
            log.warning("hub unreachable (%s); using the cached %s", type(exc).__name__, repo_id)
            return cached
        raise _not_available(
            repo_id, "the Hugging Face hub was tried", f"it could not be reached ({type(exc).__name__}: {exc}) and "
            "the model is not in the cache"
        ) from exc  # fmt: skip


def pipeline_files(files: Sequence[str], index: dict[str, Any], variant: str | None) -> list[str]:
    """The files ``from_pretrained`` reads: model_index.json, and per listed component its side files and one set
    of safetensors weights (the variant's where the component has them, else the plain ones)."""
    components = {n for n, s in index.items() if not n.startswith("_") and isinstance(s, list) and s[0] is not None}
    chosen = ["model_index.json"]
    for name in sorted(components):
        inside = [f for f in files if f.startswith(name + "/") and f.count("/") == 1]
        chosen += [f for f in inside if f.endswith(_SIDE_FILES)]
        weights = [f for f in inside if f.endswith(".safetensors")]
        wanted = [f for f in weights if _variant_of(f) == variant] if variant else []
        chosen += wanted or [f for f in weights if _variant_of(f) is None]
    return chosen


def _variant_of(filename: str) -> str | None:
    parts = Path(filename).name.split(".")  # diffusion_pytorch_model.fp16.safetensors
    return parts[-2].split("-")[0] if len(parts) > 2 else None


def pull_preview(repo_id: str, *, offline: bool) -> bool:
    """Fetch a TAESD-family preview decoder (two small files); False when it cannot be had (previews then use the
    model's own VAE)."""
    from huggingface_hub import snapshot_download

    if preview_cached(repo_id):
        return True
    if is_offline(offline):
        return False
    try:
        snapshot_download(repo_id, allow_patterns=_PREVIEW_FILES)
    except Exception as exc:  # the preview decoder is an optimisation; its absence is not an error
        log.warning("preview decoder %s not downloaded (%s: %s)", repo_id, type(exc).__name__, exc)
        return False
    return True


def preview_cached(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return all(isinstance(try_to_load_from_cache(repo_id, name), str) for name in _PREVIEW_FILES)


def locate(spec: ModelSpec, *, offline: bool) -> Path:
    """A local directory or file to read the model's configs from. A hub model not cached yet gets its configs
    only (a few kB; the engine downloads the weights when it loads) unless offline."""
    if spec.kind != "hub":
        return Path(spec.source)
    snapshot = _cached_snapshot(spec.source)
    if snapshot is not None:
        return snapshot
    if is_offline(offline):
        raise _not_available(spec.source, "offline mode, so only the cache was searched", "it is not cached")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(spec.source, allow_patterns=_CONFIG_PATTERNS, ignore_patterns=_NEVER))
    except Exception as exc:  # as in _download: the hub cannot be reached or refuses
        raise _not_available(
            spec.source, "the Hugging Face hub was tried for its configs", f"it could not be reached "
            f"({type(exc).__name__}: {exc}) and the model is not in the cache"
        ) from exc  # fmt: skip


def detect(spec: ModelSpec, *, offline: bool) -> Detection:
    path = locate(spec, offline=offline)
    if spec.kind == "file":
        return detect_single_file(path)
    return detect_directory(path, name=spec.source if spec.kind == "hub" else path.name)


def entries_for(specs: Sequence[str], settings: Settings) -> dict[str, ModelEntry]:
    """Catalogue entries for ``--model`` specs, in order: engine ``diffusers`` with the detected family's options
    and API profile."""
    entries: dict[str, ModelEntry] = {}
    for raw in specs:
        spec = parse_spec(raw)
        if spec.model_id in entries:
            raise ConfigurationError(f"--model: the id {spec.model_id!r} is given twice; name one with ID=SOURCE")
        detection = detect(spec, offline=settings.offline)
        family = detection.family
        options: dict[str, Any] = {"model": spec.source, **family.engine_options()}
        if detection.variant:
            options["variant"] = detection.variant
        if spec.kind == "hub" and is_offline(settings.offline):
            options["local_files_only"] = True
        if family.preview_vae and (preview_cached(family.preview_vae) or not is_offline(settings.offline)):
            options["preview_vae"] = family.preview_vae
        log.info("model %s: %s family %s (%s)", spec.model_id, spec.source, family.name, detection.reason)
        entries[spec.model_id] = ModelEntry(
            engine="diffusers",
            profile=family.profile,
            options=options,
            description=f"{family.description}: {spec.source}",
        )
    return entries
