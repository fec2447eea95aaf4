"""The bounded parser of request bodies: every value a wire model should never see is a 400 naming its path."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imageforge.errors import InvalidRequestError
from imageforge.protocol.jsonbody import MAX_DEPTH, MAX_VALUES, json_path, parse_json_object


@pytest.mark.parametrize(
    ("raw", "param", "code"),
    [
        (b'{"n": 1' + b"0" * 5000 + b"}", "n", "integer_above_max_value"),
        (b'{"a": {"b": [0, -99999999999999999999]}}', "a.b[1]", "integer_below_min_value"),
        (b'{"n": 9223372036854775808}', "n", "integer_above_max_value"),
        (b'{"t": NaN}', "t", "invalid_value"),
        (b'{"t": Infinity}', "t", "invalid_value"),
        (b'{"t": [-Infinity]}', "t[0]", "invalid_value"),
        (b'{"t": 1e400}', "t", "invalid_value"),
        (b'{"t": -1e400}', "t", "invalid_value"),
        (b'{"input": [{"content": [{"text": "a\\ud800b"}]}]}', "input[0].content[0].text", "invalid_value"),
        (b'{"x": "\\udfff"}', "x", "invalid_value"),
        (b'{"metadata": {"\\ud800": "v"}}', "metadata.\\ud800", "invalid_value"),
        (
            b'{"a": ' + b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1) + b"}",
            "a" + "[0]" * (MAX_DEPTH - 1),
            "invalid_value",
        ),
    ],
)
def test_unrepresentable_values_are_named(raw: bytes, param: str, code: str) -> None:
    with pytest.raises(InvalidRequestError) as e:
        parse_json_object(raw)
    assert (e.value.param, e.value.code) == (param, code)
    assert e.value.message.encode("utf-8")  # the message itself is valid Unicode, whatever the input was


def test_the_first_problem_in_document_order_is_reported() -> None:
    with pytest.raises(InvalidRequestError) as e:
        parse_json_object(b'{"a": NaN, "b": "\\ud800", "c": 1e999}')
    assert e.value.param == "a"


@pytest.mark.parametrize(
    "raw",
    [b"", b"{", b"\xff\xfe", b"[" * 100_000 + b"]" * 100_000, b'{"a": 1} x', b"[1]", b'"s"', b"null"],
)
def test_malformed_bodies(raw: bytes) -> None:
    with pytest.raises(InvalidRequestError):
        parse_json_object(raw)


def test_a_body_of_millions_of_values_is_refused_before_it_is_parsed() -> None:
    with pytest.raises(InvalidRequestError, match=f"more than {MAX_VALUES}"):
        parse_json_object(b'{"input": [' + b"0," * MAX_VALUES + b"0]}")


def test_valid_bodies_pass_untouched() -> None:
    body = {"n": -(2**63), "m": 2**63 - 1, "f": 1.5e300, "s": "Zoë 🙂 \u0000", "deep": [[[{"x": None}]]], "b": True}
    assert parse_json_object(json.dumps(body).encode()) == body


def test_json_path() -> None:
    assert json_path(("input", 0, "content", 12, "text")) == "input[0].content[12].text"
    assert json_path(()) == ""


# Any JSON object made of finite numbers and valid text parses to itself (the parser refuses only what it names).
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)  # fmt: skip


@settings(max_examples=200, derandomize=True, deadline=None)
@given(st.dictionaries(st.text(max_size=8), _json, max_size=5))
def test_round_trip(body: dict[str, object]) -> None:
    assert parse_json_object(json.dumps(body).encode()) == body


@settings(max_examples=300, derandomize=True, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_parse_or_are_a_named_400(raw: bytes) -> None:
    try:
        parse_json_object(raw)
    except InvalidRequestError as e:
        assert e.status == 400 and e.message
