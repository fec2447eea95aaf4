"""Pydantic's validation errors -> OpenAI's 400s, naming the parameter as OpenAI does (``tools[0].n``).

Shared by every wire request model: one problem is reported, as the live API does — the first field's, and of
that field's errors the most specific one (a union such as ``str | list[...]`` reports a bad list element, not
"expected a string").
"""

from __future__ import annotations

from typing import Any, NoReturn

from pydantic import ValidationError

from imageforge.errors import InvalidRequestError, UnknownParameterError
from imageforge.protocol.jsonbody import json_path

__all__ = ["json_type", "raise_validation_error"]

_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_from_float": "an integer",
    "bool_type": "a boolean",
    "dict_type": "an object",
    "list_type": "an array",
    "float_type": "a number",
    "model_type": "an object",
    "model_attributes_type": "an object",
}
_UNION_BRANCHES = {"str", "int", "float", "bool"}  # pydantic names the branch of a union in ``loc``
# Bounds, in OpenAI's words: (error type, is the bound an integer's) -> (code, how the message puts it).
_BOUNDS = {
    "greater_than_equal": ("below_min_value", "minimum", ">="),
    "greater_than": ("below_min_value", "minimum", ">"),
    "less_than_equal": ("above_max_value", "maximum", "<="),
    "less_than": ("above_max_value", "maximum", "<"),
}


def json_type(value: object) -> str:
    """The JSON name of a decoded value's type, for messages ("an integer", "null")."""
    return {
        "str": "a string",
        "int": "an integer",
        "float": "a decimal",
        "bool": "a boolean",
        "list": "an array",
        "dict": "an object",
        "NoneType": "null",
    }.get(type(value).__name__, type(value).__name__)


def _names(loc: tuple[int | str, ...]) -> list[int | str]:
    """The parts of ``loc`` that name parameters: union branches (``str``, ``constrained-str``, ``list[...]``),
    validator names and the tags of tagged unions (``type=message``; tags always hold ``=``, field names never do)
    are dropped."""
    return [
        p
        for p in loc
        if isinstance(p, int) or (p not in _UNION_BRANCHES and "[" not in p and "=" not in p and not
                                  p.startswith(("function-", "constrained-")))
    ]  # fmt: skip


def _param(loc: tuple[int | str, ...], prefix: str) -> str:
    path = json_path(tuple(_names(loc)))
    return f"{prefix}.{path}" if prefix and path else (prefix or path)


def _chosen(exc: ValidationError) -> Any:
    errors = exc.errors()
    first = errors[0]
    field = first["loc"][:1]
    same_field = [e for e in errors if e["loc"][:1] == field]
    return max(same_field, key=lambda e: len(_names(e["loc"])))  # max keeps the first of equals


def _bound_error(err: Any, param: str) -> InvalidRequestError:
    code, word, sign = _BOUNDS[err["type"]]
    limit = next(iter(err.get("ctx", {}).values()), "?")
    kind = "integer" if isinstance(err.get("input"), int) else "decimal"
    return InvalidRequestError(
        f"Invalid '{param}': {kind} {'below' if word == 'minimum' else 'above'} {word} value. Expected a value "
        f"{sign} {limit}, but got {err.get('input')!r} instead.",
        param=param,
        code=f"{kind}_{code}",
    )


def raise_validation_error(exc: ValidationError, prefix: str = "") -> NoReturn:
    """Raise the 400 for ``exc``'s error (see the module docstring); ``prefix`` names the enclosing parameter
    (``tools[0]``)."""
    err = _chosen(exc)
    param = _param(err["loc"], prefix)
    if err["type"] == "extra_forbidden":
        raise UnknownParameterError(f"Unknown parameter: '{param}'.", param=param) from None
    if err["type"] == "missing":
        raise InvalidRequestError(
            f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter"
        ) from None
    if err["type"] == "literal_error":
        allowed = err.get("ctx", {}).get("expected", "")
        raise InvalidRequestError(
            f"Invalid value for '{param}'. Supported values are: {allowed}.", param=param, code="invalid_value"
        ) from None
    if err["type"] == "string_too_long":
        limit, got = err["ctx"]["max_length"], len(err["input"])
        raise InvalidRequestError(
            f"Invalid '{param}': string too long. Expected a string with maximum length {limit}, but got a string "
            f"with length {got} instead.",
            param=param,
            code="string_above_max_length",
        ) from None
    if err["type"] == "string_too_short":
        limit = err["ctx"]["min_length"]
        raise InvalidRequestError(
            f"Invalid '{param}': string too short. Expected a string with minimum length {limit}.",
            param=param,
            code="string_below_min_length",
        ) from None
    if err["type"] in _BOUNDS:
        raise _bound_error(err, param) from None
    expected = _EXPECTED.get(err["type"], "a valid value")
    raise InvalidRequestError(
        f"Invalid type for '{param}': expected {expected}, but got {json_type(err.get('input'))} instead.",
        param=param,
        code="invalid_type",
    ) from None
