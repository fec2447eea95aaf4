"""Parsing ``POST /v1/responses`` bodies: names and JSON types, with the parameter named in every error."""

from __future__ import annotations

from typing import Any

import pytest

from imageforge.errors import InvalidRequestError
from imageforge.protocol.responses import InputMessage, ItemReference, parse_create_request, parse_input


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"input": "x"}, "model", "missing_required_parameter"),
        ({"model": "m", "input": "x", "stream": "yes"}, "stream", "invalid_type"),
        ({"model": "m", "input": "x", "nope": 1}, "nope", "unknown_parameter"),
        ({"model": "m", "input": "x", "conversation": "conv_1"}, "conversation", "unsupported_parameter"),
    ],
)
def test_request_errors(body: dict[str, Any], param: str, code: str) -> None:
    with pytest.raises(InvalidRequestError) as e:
        parse_create_request(body)
    assert (e.value.param, e.value.code) == (param, code)


def test_optional_fields_accept_null_and_false() -> None:
    req = parse_create_request({"model": "m", "input": "x", "background": False, "store": None, "temperature": 1})
    assert req.store is None and req.temperature == 1


@pytest.mark.parametrize(
    ("tool", "param", "code"),
    [
        ({"type": "image_generation", "n": 2}, "tools[1].n", "unknown_parameter"),
        ({"type": "web_search"}, "tools[1].type", "unsupported_parameter"),
        ("image_generation", "tools[1]", "invalid_type"),
        (
            {"type": "image_generation", "input_image_mask": {"url": "x"}},
            "tools[1].input_image_mask.url",
            "unknown_parameter",
        ),
        ({"type": "image_generation", "output_compression": 1.5}, "tools[1].output_compression", "invalid_type"),
    ],
)
def test_tool_errors(tool: Any, param: str, code: str) -> None:
    with pytest.raises(InvalidRequestError) as e:
        parse_create_request({"model": "m", "input": "x", "tools": [{"type": "image_generation"}, tool]})
    assert (e.value.param, e.value.code) == (param, code)


def parsed_input(raw: list[Any]) -> list[Any]:
    """``input`` as the service reads it: validated with the request, then turned into messages and references."""
    return parse_input(parse_create_request({"model": "m", "input": raw}).input)


def test_input_items() -> None:
    items = parsed_input([
        {"role": "system", "content": "be nice"},
        {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "edit"}, {"type": "input_image", "image_url": "data:image/png;base64,AA"},
        ]},
        {"role": "assistant", "content": [{"type": "output_text", "text": "done"}]},
        {"type": "image_generation_call", "id": "ig_1", "result": "AAAA"},
        {"type": "item_reference", "id": "ig_2"},
        {"id": "ig_3"},
    ])  # fmt: skip
    assert [type(i).__name__ for i in items] == ["InputMessage"] * 3 + ["ItemReference"] * 3
    user = items[1]
    assert isinstance(user, InputMessage) and user.text == "edit" and len(user.images) == 1
    ref = items[3]
    assert isinstance(ref, ItemReference) and ref.result == "AAAA" and ref.where == "input[3]"


@pytest.mark.parametrize(
    ("item", "param"),
    [
        ({"role": "robot", "content": "x"}, "input[0].role"),
        ({"role": "user", "content": 5}, "input[0].content"),
        ({"role": "user", "content": [{"type": "input_file"}]}, "input[0].content[0]"),
        ({"role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]}, "input[0].content[0].file_id"),
        ({"role": "assistant", "content": [{"type": "input_text", "text": "x"}]}, "input[0].content[0]"),
        ({"type": "function_call_output", "call_id": "c"}, "input[0].type"),
        ({"type": "image_generation_call"}, "input[0].id"),
    ],
)
def test_input_errors(item: Any, param: str) -> None:
    with pytest.raises(InvalidRequestError) as e:
        parsed_input([item])
    assert e.value.param == param
