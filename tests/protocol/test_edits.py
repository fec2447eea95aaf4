"""The fields of ``/v1/images/edits`` and ``/variations``: multipart strings -> JSON types (``form_fields``), then
the wire models, which refuse unknown fields by name and wrong types."""

from __future__ import annotations

from typing import Any

import pytest

from imageforge.errors import InvalidRequestError, UnknownParameterError
from imageforge.protocol.edits import (
    ImageEditRequest,
    ImageRef,
    form_fields,
    parse_edit_request,
    parse_variation_request,
)

# -- form_fields: integers --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("2", 2),
        ("0", 0),
        ("-3", -3),
        ("+4", 4),
        (" 5 ", 5),
        ("007", 7),
        (str(2**63 - 1), 2**63 - 1),
        (str(-(2**63) + 1), -(2**63) + 1),
    ],
)
def test_integer_fields_become_integers(text: str, value: int) -> None:
    out = form_fields({"n": text})
    assert out == {"n": value}
    assert type(out["n"]) is int


@pytest.mark.parametrize("name", ["n", "output_compression", "partial_images", "frame_count", "frame_duration_ms"])
def test_every_integer_field_is_typed(name: str) -> None:
    assert form_fields({name: "3"}) == {name: 3}


@pytest.mark.parametrize(
    "text",
    [
        str(2**63),
        str(-(2**63)),
        "9" * 40,
        "1" + "0" * 5000,  # past Python's int() conversion limit: once a 500 (found by the in-suite fuzzer)
        "abc",
        "",
        "+",
        "-",
        "1.5",
        "1e3",
        "1_000",
        "0x10",
        "--1",
        "\u0663",  # ARABIC-INDIC DIGIT THREE: a digit to str.isdigit, not an ASCII integer
        "²",
    ],
)
def test_a_non_integer_in_an_integer_field_is_a_named_400(text: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        form_fields({"prompt": "a cat", "n": text})
    e = info.value
    assert (e.param, e.code, e.status) == ("n", "invalid_type", 400)
    assert "expected an integer" in e.message


def test_the_refusal_quotes_a_bounded_prefix_of_the_value() -> None:
    with pytest.raises(InvalidRequestError) as info:
        form_fields({"output_compression": "x" * 10_000})
    assert info.value.param == "output_compression"
    assert len(info.value.message) < 200


# -- form_fields: booleans and strings --------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "value"), [("true", True), ("false", False), ("True", True), ("False", False),
                                             ("TRUE", True)])  # fmt: skip
def test_boolean_fields_become_booleans(text: str, value: bool) -> None:
    out = form_fields({"stream": text})
    assert out == {"stream": value}
    assert type(out["stream"]) is bool


@pytest.mark.parametrize("text", ["yes", "no", "1", "0", "", "t", "on"])
def test_a_non_boolean_in_a_boolean_field_is_a_named_400(text: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        form_fields({"stream": text})
    assert (info.value.param, info.value.code) == ("stream", "invalid_type")
    assert "expected a boolean" in info.value.message


def test_other_fields_stay_strings() -> None:
    fields = {"prompt": "42", "model": "gpt-image-1", "size": "1024x1024", "user": "true", "input_fidelity": "high"}
    assert form_fields(fields) == fields


# -- form_fields: nested names ----------------------------------------------------------------------------------


def test_bracketed_names_become_nested_objects() -> None:
    out = form_fields({"prompt": "a cat", "svg[model]": "m1", "svg[reasoning][effort]": "high", "n": "1"})
    assert out == {"prompt": "a cat", "svg": {"model": "m1", "reasoning": {"effort": "high"}}, "n": 1}


def test_nested_values_are_not_typed_by_their_leaf_name() -> None:
    assert form_fields({"svg[n]": "2"}) == {"svg": {"n": "2"}}


def test_a_plain_field_and_a_nested_one_of_the_same_name_conflict() -> None:
    with pytest.raises(InvalidRequestError) as info:
        form_fields({"svg": "plain", "svg[model]": "m1"})
    assert info.value.param == "svg[model]"
    assert "conflicts with the field 'svg'" in info.value.message


def test_the_conflict_is_refused_whichever_field_comes_first() -> None:
    # The multipart form gives its fields in the order the client sent them; the nested field must not be
    # silently dropped when the plain one comes after it.
    with pytest.raises(InvalidRequestError):
        form_fields({"svg[model]": "m1", "svg": "plain"})


def test_a_nested_object_and_a_leaf_of_the_same_path_conflict_whichever_comes_first() -> None:
    with pytest.raises(InvalidRequestError):
        form_fields({"svg[model]": "m1", "svg[model][name]": "m2"})
    with pytest.raises(InvalidRequestError):
        form_fields({"svg[model][name]": "m2", "svg[model]": "m1"})


# -- parse_edit_request -----------------------------------------------------------------------------------------


def test_a_typed_form_parses() -> None:
    req = parse_edit_request(form_fields({"prompt": "a cat", "model": "gpt-image-1", "n": "2", "stream": "false",
                                          "input_fidelity": "high", "output_compression": "80"}))  # fmt: skip
    assert isinstance(req, ImageEditRequest)
    assert (req.prompt, req.model, req.n, req.stream, req.input_fidelity, req.output_compression) == (
        "a cat", "gpt-image-1", 2, False, "high", 80,
    )  # fmt: skip
    assert req.size is None and req.images is None and req.mask is None


def test_the_json_form_takes_image_refs() -> None:
    images = [{"image_url": "data:image/png;base64,AAAA"}, {"file_id": "file_1"}]
    req = parse_edit_request({"prompt": "a cat", "images": images, "mask": {"file_id": "file_2"}})
    assert req.images == [ImageRef(image_url="data:image/png;base64,AAAA"), ImageRef(file_id="file_1")]
    assert req.mask == ImageRef(file_id="file_2")


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"prompt": "a cat", "bogus": "1"}, "bogus"),
        ({"prompt": "a cat", "image_strength": 0.5}, "image_strength"),
        ({"prompt": "a cat", "images": [{"image_url": "d", "detail": "high"}]}, "images[0].detail"),
        ({"prompt": "a cat", "mask": {"file_id": "f", "x": 1}}, "mask.x"),
    ],
)
def test_unknown_fields_are_refused_by_name(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(UnknownParameterError) as info:
        parse_edit_request(fields)
    assert (info.value.param, info.value.code, info.value.status) == (param, "unknown_parameter", 400)
    assert f"'{param}'" in info.value.message


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"prompt": 5}, "prompt"),
        ({"prompt": "a cat", "n": "2"}, "n"),  # the JSON form is not coerced: a string is no integer
        ({"prompt": "a cat", "n": 1.5}, "n"),
        ({"prompt": "a cat", "n": True}, "n"),
        ({"prompt": "a cat", "stream": "true"}, "stream"),
        ({"prompt": "a cat", "stream": 1}, "stream"),
        ({"prompt": "a cat", "model": 3}, "model"),
        ({"prompt": "a cat", "svg": "plain"}, "svg"),
        ({"prompt": "a cat", "images": {"image_url": "d"}}, "images"),
        ({"prompt": "a cat", "mask": {"file_id": 3}}, "mask.file_id"),
    ],
)
def test_wrong_types_are_refused_by_name(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        parse_edit_request(fields)
    assert (info.value.param, info.value.code) == (param, "invalid_type")


def test_a_missing_prompt_is_named() -> None:
    with pytest.raises(InvalidRequestError) as info:
        parse_edit_request({"model": "gpt-image-1"})
    assert (info.value.param, info.value.code) == ("prompt", "missing_required_parameter")


# -- parse_variation_request ------------------------------------------------------------------------------------


def test_a_variation_form_parses() -> None:
    req = parse_variation_request(form_fields({"model": "dall-e-2", "n": "2", "size": "512x512",
                                               "response_format": "b64_json", "user": "u"}))  # fmt: skip
    assert (req.model, req.n, req.size, req.response_format, req.user) == ("dall-e-2", 2, "512x512", "b64_json", "u")


@pytest.mark.parametrize("name", ["prompt", "quality", "input_fidelity", "stream"])
def test_a_variation_refuses_the_fields_of_an_edit_by_name(name: str) -> None:
    with pytest.raises(UnknownParameterError) as info:
        parse_variation_request({name: "x"})
    assert (info.value.param, info.value.code) == (name, "unknown_parameter")


def test_a_variation_refuses_wrong_types() -> None:
    with pytest.raises(InvalidRequestError) as info:
        parse_variation_request({"n": "2"})
    assert (info.value.param, info.value.code) == ("n", "invalid_type")
