"""Pydantic's validation errors -> OpenAI's 400s, naming the parameter as OpenAI does (``tools[0].n``).

Shared by every wire request model: the first problem is reported, as the live API does.
"""

from __future__ import annotations

from typing import NoReturn

from pydantic import ValidationError

from imageforge.errors import InvalidRequestError, UnknownParameterError

__all__ = ["json_type", "raise_validation_error"]

_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_from_float": "an integer",
    "bool_type": "a boolean",
    "dict_type": "an object",
    "list_type": "an array",
    "float_type": "a number",
}
_UNION_BRANCHES = {"str", "int", "float", "bool"}  # pydantic names the branch of a union in ``loc``


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


def _param(loc: tuple[int | str, ...], prefix: str) -> str:
    path = ""
    for p in loc:
        if isinstance(p, int):
            path += f"[{p}]"
        elif p not in _UNION_BRANCHES and "[" not in p and not p.startswith("function-"):
            path += f".{p}" if path else p
    return f"{prefix}.{path}" if prefix and path else (prefix or path)


def raise_validation_error(exc: ValidationError, prefix: str = "") -> NoReturn:
    """Raise the 400 for ``exc``'s first error; ``prefix`` names the enclosing parameter (``tools[0]``)."""
    err = exc.errors()[0]
    param = _param(err["loc"], prefix)
    if err["type"] == "extra_forbidden":
        raise UnknownParameterError(f"Unknown parameter: '{param}'.", param=param) from None
    if err["type"] == "missing":
        raise InvalidRequestError(
            f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter"
        ) from None
    if err["type"] == "literal_error":
        raise InvalidRequestError(f"Invalid value for '{param}'.", param=param, code="invalid_value") from None
    expected = _EXPECTED.get(err["type"], "a valid value")
    raise InvalidRequestError(
        f"Invalid type for '{param}': expected {expected}, but got {json_type(err.get('input'))} instead.",
        param=param,
        code="invalid_type",
    ) from None
