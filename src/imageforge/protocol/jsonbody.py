"""The one parser of untrusted JSON request bodies: bytes in, a plain JSON object out, or OpenAI's 400 naming the
parameter that broke a limit (issue 15).

Python's ``json`` accepts things no wire model should ever see, and each of them once reached code that was not
meant to handle it:

- integers of any length (past 4,300 digits ``int()`` itself raises ``ValueError``), and integers past 64 bits
  that SQLite and every client library would overflow on;
- ``NaN``, ``Infinity`` and ``1e400`` (parsed as ``inf``), which are not JSON: stored, they make a document that
  no JSON encoder will write back out;
- lone surrogates (``"\\ud800"``), which are not Unicode: they cannot be encoded as UTF-8, so they break the
  first log line, SQLite row, metrics page or tokenizer they reach;
- nesting deep enough to exhaust the recursion limit, and bodies made of millions of tiny values.

Each is refused here, once, with the JSON path of the offending value as ``param`` (``temperature``,
``input[0].content[1].text``), so everything downstream receives only finite numbers within 64 bits and valid
Unicode. The walk is iterative (no recursion on hostile depth) and the messages never echo the bad value itself.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Final

from imageforge.errors import InvalidRequestError

__all__ = ["BAD_JSON", "MAX_DEPTH", "MAX_VALUES", "json_path", "parse_json_object"]

BAD_JSON: Final = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library "
    "correctly. The API expects a JSON payload, but what was sent was not valid JSON.)"
)
MAX_DEPTH: Final = 32  # containers inside containers; the deepest real request (Responses input parts) needs 5
MAX_VALUES: Final = 1_000_000  # JSON values in one body; a base64 image is one value
_INT_MAX: Final = 2**63 - 1
_INT_MIN: Final = -(2**63)
_MAX_INT_TEXT: Final = 20  # characters of the longest int64 literal ("-9223372036854775808")
_SURROGATE = re.compile("[\ud800-\udfff]")


class _Unrepresentable:
    """Stands in for a number the parser met but no field may hold; the walk reports it with its path."""

    __slots__ = ("code", "why")

    def __init__(self, why: str, code: str) -> None:
        self.why = why
        self.code = code


def _parse_int(text: str) -> int | _Unrepresentable:
    if len(text) <= _MAX_INT_TEXT:
        value = int(text)
        if _INT_MIN <= value <= _INT_MAX:
            return value
    digits = len(text.lstrip("-"))
    if text.startswith("-"):
        return _Unrepresentable(
            f"integer below minimum value. Expected a value >= {_INT_MIN}, but got a {digits}-digit number instead",
            "integer_below_min_value",
        )
    return _Unrepresentable(
        f"integer above maximum value. Expected a value <= {_INT_MAX}, but got a {digits}-digit number instead",
        "integer_above_max_value",
    )


def _parse_float(text: str) -> float | _Unrepresentable:
    value = float(text)
    if math.isfinite(value):
        return value
    shown = text if len(text) <= 24 else text[:20] + "..."
    return _Unrepresentable(f"{shown} is out of range: numbers must be finite", "invalid_value")


def _parse_constant(name: str) -> _Unrepresentable:
    return _Unrepresentable(f"{name} is not a JSON number: numbers must be finite", "invalid_value")


def json_path(path: tuple[str | int, ...]) -> str:
    """``("input", 0, "content")`` -> ``input[0].content`` (OpenAI's way of naming a nested parameter)."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            if _SURROGATE.search(part):  # never put invalid Unicode into the error that reports it
                part = part.encode("utf-8", "backslashreplace").decode("utf-8")
            out += f".{part}" if out else part
    return out


def _surrogate_error(path: tuple[str | int, ...], what: str) -> InvalidRequestError:
    param = json_path(path) or None
    return InvalidRequestError(
        f"Invalid {what} in '{param or 'body'}': it contains a lone UTF-16 surrogate, which is not valid Unicode. "
        "Send text as valid UTF-8.",
        param=param,
        code="invalid_value",
    )


def _check(body: dict[str, Any]) -> None:
    """Walk every value once (iteratively): depth, unrepresentable numbers and invalid Unicode."""
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), body)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if not value.isascii() and _SURROGATE.search(value):
                raise _surrogate_error(path, "string")
        elif isinstance(value, _Unrepresentable):
            param = json_path(path) or None
            raise InvalidRequestError(f"Invalid '{param}': {value.why}.", param=param, code=value.code)
        elif isinstance(value, dict | list):
            if len(path) >= MAX_DEPTH:
                param = json_path(path)
                raise InvalidRequestError(
                    f"The request body is nested more than {MAX_DEPTH} levels deep at '{param}'.",
                    param=param,
                    code="invalid_value",
                )
            # Children are pushed last-first, so the first problem in document order is the one reported.
            if isinstance(value, dict):
                for key, item in reversed(value.items()):
                    if not key.isascii() and _SURROGATE.search(key):
                        raise _surrogate_error((*path, key), "key")
                    stack.append(((*path, key), item))
            else:
                stack.extend(((*path, i), value[i]) for i in range(len(value) - 1, -1, -1))


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """Decode a request body that must be a JSON object, within the limits above (blocking: CPU only)."""
    # Values in containers are separated by commas: counting them bounds the work before any is parsed (a 50 MB
    # body of zeros would otherwise cost seconds of CPU and a gigabyte of objects before being refused).
    if raw.count(b",") >= MAX_VALUES:
        raise InvalidRequestError(f"The request body holds more than {MAX_VALUES} JSON values.", code="invalid_value")
    try:
        body = json.loads(raw, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):  # RecursionError: absurdly deep nesting
        raise InvalidRequestError(BAD_JSON) from None
    if not isinstance(body, dict):
        raise InvalidRequestError("The request body must be a JSON object.")
    _check(body)
    return body
