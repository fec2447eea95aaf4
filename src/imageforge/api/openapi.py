"""``/openapi.json``: the served contract, built from the wire models themselves (issue 15).

Routes read their JSON bodies through the one bounded parser (``protocol/jsonbody.py``) rather than letting
FastAPI parse them, so FastAPI does not know their schemas; each route names its request model with
:func:`json_body` and its answers with :func:`answers`, and :func:`install_openapi` writes the models' schemas
into the document. FastAPI's own ``422`` entries are dropped: validation errors are OpenAI's 400 envelope here
(``api/errors.py``), which every operation documents, together with a ``default`` answer that is that same
envelope, so a schema checker holds every status to it.

An event stream is documented per event, as OpenAPI 3.1 does for ``text/event-stream`` without ``itemSchema``:
an ``event`` name and a ``data`` string whose ``contentSchema`` is the union of the stream's event models, so a
checker (schemathesis does) parses each event's JSON and validates it.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from imageforge.protocol.errors import ErrorResponse

__all__ = ["BODY_MODEL_KEY", "SSE", "answers", "form_body", "install_openapi", "json_body"]

BODY_MODEL_KEY = "x-imageforge-body"  # route openapi_extra key -> the request model (replaced by install_openapi)
FORM_KEY = "x-imageforge-form"  # ... -> a multipart body: the model of its text fields, and its file fields
_FORM_SKIPPED = ("images", "mask", "complexity", "frame_count", "frame_duration_ms", "svg")  # files, JSON-only
SSE = "text/event-stream"
_ERRORS = {
    400: "Invalid request: OpenAI's error envelope naming the parameter",
    401: "Missing or wrong API key",
    404: "Not found: an unknown model (model_not_found), response or image",
    413: "Request body too large",
    429: "Rate limit or full queue (Retry-After, x-ratelimit-* headers)",
    500: "Server error",
    503: "Shutting down, or the model could not be loaded",
    504: "The request took longer than the server's limit",
}


def json_body(model: type[BaseModel], description: str) -> dict[str, Any]:
    """``openapi_extra`` for a route whose JSON body is ``model``."""
    return {BODY_MODEL_KEY: model.__name__, "x-imageforge-body-description": description}


def form_body(
    model: type[BaseModel], files: tuple[str, ...], description: str, *, json: bool = False
) -> dict[str, Any]:
    """``openapi_extra`` for a route whose body is a multipart form: ``files`` (the first required) and the text
    fields of ``model``; with ``json``, ``model`` as a JSON body too."""
    extra: dict[str, Any] = {FORM_KEY: [model.__name__, list(files)], "x-imageforge-body-description": description}
    if json:
        extra[BODY_MODEL_KEY] = model.__name__
    return extra


def _form_schema(model: dict[str, Any], files: list[str]) -> dict[str, Any]:
    binary = {"type": "string", "format": "binary"}
    props: dict[str, Any] = {f: dict(binary) for f in files}
    props.update({k: v for k, v in model.get("properties", {}).items() if k not in _FORM_SKIPPED})
    return {"type": "object", "required": [files[0], *model.get("required", ())], "properties": props}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def answers(
    ok: type[BaseModel] | None,
    *statuses: int,
    events: tuple[type[BaseModel], ...] = (),
    media: dict[str, Any] | None = None,
    links: dict[str, Any] | None = None,
) -> dict[int | str, dict[str, Any]]:
    """FastAPI ``responses`` for a route: 200 (``ok``'s JSON, plus an event stream of ``events`` or other media,
    and OpenAPI ``links`` to the operations its body feeds), the listed error statuses and ``default`` as the
    error envelope. Event models must be given to :func:`install_openapi` too."""
    ok_content: dict[str, Any] = dict(media or {})
    if events:
        data = {"type": "string", "contentMediaType": "application/json",
                "contentSchema": {"anyOf": [_ref(m) for m in events]}}  # fmt: skip
        ok_content[SSE] = {"schema": {
            "type": "object", "required": ["event", "data"], "description": "One server-sent event",
            "properties": {"event": {"type": "string"}, "data": data},
        }}  # fmt: skip
    out: dict[int | str, dict[str, Any]] = {}
    if ok is not None:
        out[200] = {"model": ok, "description": "OK", **({"content": ok_content} if ok_content else {})}
    elif ok_content:
        out[200] = {"description": "OK", "content": ok_content}
    if links:
        out[200]["links"] = links
    for status in statuses:
        out[status] = {"model": ErrorResponse, "description": _ERRORS[status]}
    out["default"] = {"model": ErrorResponse, "description": "Any other error, in OpenAI's envelope"}
    return out


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        own = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return own.union(*(_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node))
    return set()


def install_openapi(
    app: FastAPI,
    requests: list[type[BaseModel]],
    outputs: list[type[BaseModel]],
    served: dict[str, list[str]] | None = None,
) -> None:
    """Serve a document whose components are the schemas of ``requests`` (as validated) and ``outputs`` (as
    served: responses and stream events), generated together by pydantic so one model has one name; built once,
    on first request. Every ``$ref`` must resolve, or building fails (a route naming a model not listed here).

    ``served`` lists the values this server takes for some ``Schema.field`` (``ImageGenerateRequest.model``: the
    catalogue's ids), written into the document as examples: the wire models accept any string there (an
    unknown model is a 404, not a validation error), but tooling and fuzzers should know the real ones."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        wanted = [(m, "validation") for m in requests] + [(m, "serialization") for m in outputs]
        _, defs = models_json_schema(wanted, ref_template="#/components/schemas/{model}")  # type: ignore[arg-type]
        schemas = {k: v for k, v in defs.get("$defs", {}).items() if not k.startswith("_")}  # placeholders
        for where, values in (served or {}).items():
            name, field = where.split(".")
            schemas[name]["properties"][field]["examples"] = values
        doc.setdefault("components", {})["schemas"] = schemas
        for item in doc.get("paths", {}).values():
            for operation in item.values():
                operation.get("responses", {}).pop("422", None)
                name = operation.pop(BODY_MODEL_KEY, None)
                form = operation.pop(FORM_KEY, None)
                description = operation.pop("x-imageforge-body-description", None)
                content: dict[str, Any] = {}
                if form is not None:
                    content["multipart/form-data"] = {"schema": _form_schema(schemas[form[0]], form[1])}
                if name is not None:
                    content["application/json"] = {"schema": {"$ref": f"#/components/schemas/{name}"}}
                if content:
                    operation["requestBody"] = {"required": True, "description": description, "content": content}
        missing = {r for r in _refs(doc) if r.removeprefix("#/components/schemas/") not in schemas}
        if missing:
            raise RuntimeError(f"the OpenAPI document refers to schemas it does not hold: {sorted(missing)}")
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
