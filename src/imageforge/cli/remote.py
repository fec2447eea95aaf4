"""``imageforge generate --server URL`` and ``imageforge edit --server URL``: the same request sent to a running
server over OpenAI's public API (so any OpenAI-compatible server works), streamed where the API allows it
(``n`` 1 on a GPT image model), so the progress bar and the ``--partials`` previews come from the server's own
``partial_image`` events. The files written are the server's bytes, not re-encoded."""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from httpx_sse import connect_sse
from PIL import Image
from rich.console import Console

from imageforge.cli.files import output_target, partial_path, result_paths
from imageforge.cli.progress import Bar, step_progress
from imageforge.cli.requests import preview_count, read_edit_files, request_fields
from imageforge.errors import InvalidRequestError
from imageforge.imaging.decode import sniff_mimetype
from imageforge.storage.atomic import write_atomic

__all__ = ["RemoteError", "api_base", "run_remote"]

REMOTE_DEFAULT_MODEL = "gpt-image-1"


class RemoteError(Exception):
    """An error the server answered (its own words), or a server that cannot be reached."""

    def __init__(self, message: str, param: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message, self.param, self.status = message, param, status


def api_base(server: str) -> str:
    """``http://host:port``, with or without ``/v1``, -> the API's base URL."""
    parts = urlsplit(server if "://" in server else f"http://{server}")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidRequestError(f"--server {server!r} is not an http(s) URL", param="server")
    base = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
    return base if base.endswith("/v1") else base + "/v1"


def _error(response: httpx.Response) -> RemoteError:
    response.read()
    try:
        err = response.json()["error"]
        return RemoteError(str(err["message"]), err.get("param"), response.status_code)
    except (ValueError, KeyError, TypeError):
        return RemoteError(f"HTTP {response.status_code}: {response.text[:300]}", None, response.status_code)


@contextmanager
def _reaching(base: str) -> Iterator[None]:
    try:
        yield
    except httpx.TimeoutException:
        raise RemoteError(f"{base} did not answer in time (--timeout)") from None
    except httpx.TransportError as exc:
        raise RemoteError(f"cannot reach {base}: {exc}. Is the server running there?") from None


class _Request:
    """What is sent: JSON fields, or a multipart form with the edit's files."""

    def __init__(self, path: str, fields: dict[str, Any], files: list[tuple[str, Any]] | None) -> None:
        self.path, self.fields, self.files = path, fields, files

    def kwargs(self) -> dict[str, Any]:
        if self.files is None:
            return {"json": self.fields}
        form = {k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in self.fields.items()}
        return {"data": form, "files": self.files}


def _edit_parts(ns: argparse.Namespace) -> list[tuple[str, Any]]:
    files = read_edit_files(ns.images, ns.mask)
    name = "image" if len(files.images) == 1 else "image[]"
    parts: list[tuple[str, Any]] = [
        (name, (fname, f.data, sniff_mimetype(f.data))) for fname, f in zip(files.names, files.images, strict=True)
    ]
    if files.mask is not None:
        parts.append(("mask", (files.mask_name, files.mask.data, "image/png")))
    return parts


def run_remote(ns: argparse.Namespace, console: Console, *, edit: bool) -> int:
    if ns.seed is not None:
        raise InvalidRequestError("--seed works in-process only: OpenAI's API has no seed parameter.", param="seed")
    model = ns.model or REMOTE_DEFAULT_MODEL
    dalle = model.startswith("dall-e")
    fmt, out = output_target(ns.output, ns.output_format, "edited" if edit else "image")
    fields = request_fields(ns, model, fmt, gpt=not dalle)
    n = int(ns.n or 1)
    stream = n == 1 and not dalle
    k = preview_count(ns, default=2 if stream else 0)
    if k and not stream:
        raise InvalidRequestError("Previews come from a streamed request, which returns one image of a GPT image "
                                  "model: use --n 1 and a GPT image model, or leave out --partials.",
                                  param="partial_images")  # fmt: skip
    if stream:
        fields.update(stream=True, partial_images=k)
    elif dalle:
        fields["response_format"] = "b64_json"
    request = _Request("/images/edits" if edit else "/images/generations", fields, _edit_parts(ns) if edit else None)
    base = api_base(ns.server)
    key = ns.api_key or os.environ.get("OPENAI_API_KEY")
    headers = {"authorization": f"Bearer {key}"} if key else {}
    host = urlsplit(base).netloc
    with httpx.Client(base_url=base, headers=headers, timeout=ns.timeout) as client, _reaching(base):
        if stream:
            with step_progress(console, f"{model} on {host}", k + 1, unit="events") as bar:
                item, saved = _streamed(client, request, bar, out, ns.partials)
            items = [item]
        else:
            with step_progress(console, f"{model} on {host}", None, unit="images") as bar:
                items = _plain(client, request)
                bar.advance_to(len(items), len(items))
            saved = []
        blobs = [_image_bytes(client, item) for item in items]
    paths = result_paths(out, len(blobs))
    for path, blob in zip(paths, blobs, strict=True):
        write_atomic(path, blob)
    for path, blob, item in zip(paths, blobs, items, strict=True):
        with Image.open(io.BytesIO(blob)) as img:
            size = f"{img.width}x{img.height}"
        revised = f'; revised prompt "{item["revised_prompt"]}"' if item.get("revised_prompt") else ""
        console.print(f"{path}  ({size}, {fmt}{revised})", soft_wrap=True)
    if saved:
        console.print(f"{len(saved)} previews in {ns.partials}", soft_wrap=True)
    return 0


def _plain(client: httpx.Client, request: _Request) -> list[dict[str, Any]]:
    r = client.post(request.path, **request.kwargs())
    if r.status_code >= 400:
        raise _error(r)
    data = r.json().get("data")
    if not isinstance(data, list) or not data:
        raise RemoteError("the server answered with no images")
    return [dict(d) for d in data]


def _streamed(
    client: httpx.Client, request: _Request, bar: Bar, out: Path, partials: Path | None
) -> tuple[dict[str, Any], list[Path]]:
    """Read the stream: each partial image moves the bar (and is saved with ``--partials``); the completed event
    is the image. An in-band ``error`` event is the server's refusal or failure."""
    saved: list[Path] = []
    with connect_sse(client, "POST", request.path, **request.kwargs()) as source:
        if source.response.status_code >= 400:
            raise _error(source.response)
        for done, sse in enumerate(source.iter_sse(), start=1):
            event = json.loads(sse.data)
            kind = str(event.get("type", sse.event))
            if kind == "error":
                err = event.get("error") or {}
                raise RemoteError(str(err.get("message", event)), err.get("param"))
            if kind.endswith(".partial_image"):
                bar.advance_to(done)
                if partials is not None:
                    path = partial_path(partials, out, 0, 1, int(event["partial_image_index"]))
                    write_atomic(path, base64.b64decode(event["b64_json"]))
                    saved.append(path)
            elif kind.endswith(".completed"):
                bar.advance_to(done, done)
                return dict(event), saved
    raise RemoteError("the server's stream ended without an image")


def _image_bytes(client: httpx.Client, item: dict[str, Any]) -> bytes:
    if item.get("b64_json"):
        return base64.b64decode(item["b64_json"])
    url = item.get("url")
    if not url:
        raise RemoteError("the server answered an image with neither b64_json nor url")
    r = client.get(url)
    if r.status_code >= 400:
        raise _error(r)
    return r.content
