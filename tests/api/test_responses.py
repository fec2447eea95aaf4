"""``/v1/responses`` with the image_generation tool, through the official SDK and as raw SSE bytes, against a
real server on the embedded model (reference §4, §7.10)."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import httpx
import numpy as np
import openai
import pytest
from PIL import Image

from tests.api.images import decode_b64, min_alpha
from tests.api.server import Server

TOOL = {"type": "image_generation", "quality": "low"}


def tools(**fields: Any) -> Any:
    """``tools=[...]`` with the image tool (typed Any: the SDK's TypedDicts do not know every field we send)."""
    return [{**TOOL, **fields}]


CALL_FIELDS = {
    "id": str, "type": str, "status": str, "result": str, "action": str, "background": str, "output_format": str,
    "quality": str, "size": str, "revised_prompt": str,
}  # fmt: skip
STREAM_ORDER = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.image_generation_call.in_progress",
    "response.image_generation_call.generating",
    # partial_image events here
    "response.image_generation_call.completed",
    "response.output_item.done",
    "response.output_item.added",  # the assistant message
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


def _call(output: list[Any]) -> Any:
    calls = [o for o in output if o.type == "image_generation_call"]
    assert len(calls) == 1, output
    return calls[0]


def _pixels(b64: str, size: int = 64) -> np.ndarray:
    img, _ = decode_b64(b64)
    return np.asarray(img.convert("RGB").resize((size, size), Image.Resampling.BOX), dtype=np.float64)


def raw_stream(server: Server, body: dict[str, Any]) -> tuple[str, list[tuple[str, dict[str, Any]]]]:
    """POST a streaming request; the raw text and (event line, data) per frame (keep-alive comments dropped)."""
    with httpx.stream("POST", f"{server.v1}/responses", json={**body, "stream": True}, timeout=300) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        raw = r.read().decode()
    frames = []
    for f in raw.split("\n\n"):
        if not f or f.startswith(":"):
            continue
        lines = f.split("\n")
        # OpenAI-DotNet's rule (§7.10): an `event:` line immediately followed by exactly one `data:` line.
        assert len(lines) == 2 and lines[0].startswith("event: ") and lines[1].startswith("data: "), f[:120]
        data = json.loads(lines[1].removeprefix("data: "))
        assert data["type"] == lines[0].removeprefix("event: ")
        frames.append((lines[0].removeprefix("event: "), data))
    return raw, frames


def test_create_returns_a_complete_image_generation_call(server: Server) -> None:
    tool: Any = {**TOOL, "size": "1536x1024", "output_format": "webp", "background": "transparent"}
    r = server.client().responses.create(model="gpt-5", input="Please draw a blue heart", tools=[tool])
    assert r.id.startswith("resp_") and r.object == "response" and r.status == "completed" and r.model == "gpt-5"
    call = _call(r.output)
    fields = call.model_dump()
    for name, kind in CALL_FIELDS.items():
        assert isinstance(fields[name], kind), (name, fields[name])
    assert call.id.startswith("ig_") and call.type == "image_generation_call" and call.status == "completed"
    assert (call.action, call.size, call.quality, call.background, call.output_format) == (
        "generate", "1536x1024", "low", "transparent", "webp",
    )  # fmt: skip
    assert call.revised_prompt == "a blue heart"  # the request phrasing is not part of the image
    img, _ = decode_b64(call.result)
    assert (img.format, img.size, img.mode) == ("WEBP", (1536, 1024), "RGBA") and min_alpha(img) == 0
    message = r.output[-1]
    assert message.type == "message" and message.id.startswith("msg_") and "a blue heart" in r.output_text
    assert (
        r.usage is not None
        and r.usage.input_tokens > 0
        and r.usage.total_tokens == (r.usage.input_tokens + r.usage.output_tokens)
    )
    # The SDK's documented default image model of the tool (openai 3.57), served by the default engine.
    assert r.tools[0].model == "gpt-image-2.6-sunburst" and r.tool_choice == "auto" and r.parallel_tool_calls is True


def test_stream_frames_order_and_sequence_numbers(server: Server) -> None:
    body = {"model": "gpt-4.1", "input": "draw a yellow star", "tools": [{**TOOL, "partial_images": 2}]}
    raw, frames = raw_stream(server, body)
    assert "\nid:" not in raw and "retry:" not in raw and not raw.startswith("id:") and "[DONE]" not in raw
    types = [t for t, _ in frames]
    partials = [d for t, d in frames if t == "response.image_generation_call.partial_image"]
    assert types == STREAM_ORDER[:5] + [p["type"] for p in partials] + STREAM_ORDER[5:]
    assert [d["sequence_number"] for _, d in frames] == list(range(len(frames)))
    assert [p["partial_image_index"] for p in partials] == [0, 1]
    for p in partials:
        img, _ = decode_b64(p["partial_image_b64"])
        assert (img.format, img.size) == ("PNG", (1024, 1024))
        assert (p["size"], p["quality"], p["output_format"], p["background"]) == ("1024x1024", "low", "png", "opaque")
    response_ids = {d["response"]["id"] for t, d in frames if "response" in d}
    assert len(response_ids) == 1  # one response id throughout (DotNet checks)
    added, done = frames[2][1], frames[len(partials) + 6][1]
    assert added["item"]["status"] == "in_progress" and added["item"]["result"] is None
    item_id = added["item"]["id"]
    assert all(d.get("item_id", item_id) == item_id for t, d in frames if "image_generation_call" in t)
    assert done["item"]["id"] == item_id and done["item"]["status"] == "completed" and done["item"]["result"]
    for _, d in frames:  # never "generating" on an item without its image
        item = d.get("item") or {}
        assert item.get("status") != "generating" or item.get("result")
    final = frames[-1][1]["response"]
    assert final["status"] == "completed" and final["output"][0]["result"] == done["item"]["result"]
    # DotNet polls GET /v1/responses/{id} after the stream: it must be there, with the image.
    stored = server.client().responses.retrieve(final["id"])
    assert stored.status == "completed" and _call(stored.output).result == done["item"]["result"]


def test_sdk_stream_helper(server: Server) -> None:
    with server.client().responses.stream(
        model="gpt-5",
        input="make an emoji of a red apple",
        tools=tools(partial_images=1),
    ) as stream:
        types = [e.type for e in stream]
        final = stream.get_final_response()
    assert types[0] == "response.created" and types[-1] == "response.completed"
    assert types.count("response.image_generation_call.partial_image") == 1
    call = _call(final.output)
    assert call.status == "completed" and call.revised_prompt == "a red apple" and decode_b64(call.result)


def test_partial_images_zero_sends_the_image_only_when_done(server: Server) -> None:
    _, frames = raw_stream(server, {"model": "gpt-5", "input": "draw a cat", "tools": [TOOL]})
    types = [t for t, _ in frames]
    assert "response.image_generation_call.partial_image" not in types
    assert types[:7] == STREAM_ORDER[:7]
    assert frames[6][1]["item"]["result"]


def test_multi_turn_edit_with_previous_response_id(server: Server) -> None:
    client = server.client()
    first = client.responses.create(model="gpt-5", input="draw a red heart", tools=tools())
    source = _call(first.output)
    second = client.responses.create(
        model="gpt-5",
        input="now make it blue",
        previous_response_id=first.id,
        tools=tools(model="gpt-image-1", input_fidelity="high"),  # the default model (2.6) takes no fidelity
    )
    edited = _call(second.output)
    assert edited.action == "edit" and second.previous_response_id == first.id
    assert edited.revised_prompt == "a blue heart"  # the prompt of the result, not the instruction
    # The same prompt drawn from scratch (three seeds, as seeds are random): the edit must keep the first image's
    # shape much better than those do (the colour changes, as asked: compared on the drawn area, not on colour).
    fresh = [
        _call(client.responses.create(
            model="gpt-5", input=f"draw {edited.revised_prompt}", tools=tools(action="generate")
        ).output)
        for _ in range(3)
    ]  # fmt: skip
    assert all(f.action == "generate" for f in fresh)

    def drawn(b64: str) -> np.ndarray:  # where the picture is (not the white background)
        return _pixels(b64).min(axis=2) < 200

    d_edit = float((drawn(edited.result) ^ drawn(source.result)).mean())
    d_fresh = float(np.mean([(drawn(f.result) ^ drawn(source.result)).mean() for f in fresh]))
    assert d_edit < 0.8 * d_fresh, (d_edit, d_fresh)
    assert np.abs(_pixels(edited.result) - _pixels(source.result)).mean() > 0  # an edit, not a copy


def test_edit_by_image_call_id_and_item_reference(server: Server) -> None:
    client = server.client()
    first = client.responses.create(model="gpt-5", input="draw a green tree", tools=tools())
    ig = _call(first.output).id
    for ref in ({"type": "image_generation_call", "id": ig}, {"type": "item_reference", "id": ig}):
        r = client.responses.create(
            model="gpt-5",
            input=[{"role": "user", "content": [{"type": "input_text", "text": "add snow"}]}, ref],
            tools=tools(),
        )
        call = _call(r.output)
        assert call.action == "edit" and call.revised_prompt == "a green tree with snow"


def test_input_image_is_edited_at_its_own_size(server: Server) -> None:
    img = Image.new("RGBA", (1024, 1536), (200, 30, 30, 255))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    r = server.client().responses.create(
        model="gpt-5",
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "turn this into a heart"},
                    {"type": "input_image", "image_url": url},
                ],
            }
        ],
        tools=tools(),
    )
    call = _call(r.output)
    assert call.action == "edit" and call.size == "1024x1536"
    out, _ = decode_b64(call.result)
    assert out.size == (1024, 1536)


def test_text_only_answers(server: Server) -> None:
    client = server.client()
    no_tool = client.responses.create(model="gpt-5", input="draw a cat")
    assert [o.type for o in no_tool.output] == ["message"] and "image_generation" in no_tool.output_text
    not_asked = client.responses.create(model="gpt-5", input="hello, how are you?", tools=tools())
    assert [o.type for o in not_asked.output] == ["message"]
    refused = client.responses.create(model="gpt-5", input="draw a cat", tools=tools(), tool_choice="none")
    assert [o.type for o in refused.output] == ["message"]
    forced = client.responses.create(
        model="gpt-5",
        input="hello",
        tools=tools(),
        tool_choice={"type": "image_generation"},
    )
    assert _call(forced.output).revised_prompt == "hello"


def test_store_retrieve_delete_and_input_items(server: Server) -> None:
    client = server.client()
    r = client.responses.create(
        model="gpt-5",
        input="draw a moon",
        tools=tools(),
        metadata={"session": "abc"},
        instructions="flat colours",
    )
    assert _call(r.output).revised_prompt == "a moon"  # instructions are a system prompt, not image words
    got = client.responses.retrieve(r.id)
    assert got.metadata == {"session": "abc"} and _call(got.output).result == _call(r.output).result
    items = client.responses.input_items.list(r.id)
    assert [i.type for i in items.data] == ["message"] and items.data[0].id.startswith("msg_")
    client.responses.delete(r.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(r.id)
    unstored = client.responses.create(model="gpt-5", input="draw a sun", tools=tools(), store=False)
    assert unstored.model_dump()["store"] is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model="gpt-5", input="more", previous_response_id=unstored.id, tools=tools())
    assert e.value.code == "previous_response_not_found" and e.value.param == "previous_response_id"


BAD_REQUESTS = [
    ({"tools": [{**TOOL, "n": 2}]}, "tools[0].n", "unknown_parameter"),
    ({"tools": [{**TOOL, "size": "999x999"}]}, "tools", "invalid_value"),
    ({"tools": [{**TOOL, "quality": "ultra"}]}, "tools", "invalid_value"),
    ({"tools": [{**TOOL, "output_format": "jpeg", "background": "transparent"}]}, "tools", None),
    ({"tools": [{**TOOL, "partial_images": 4}]}, "tools", "invalid_value"),
    ({"tools": [{**TOOL, "model": "dall-e-3"}]}, "tools", "invalid_value"),
    ({"tools": [{**TOOL, "model": "gpt-image-2", "input_fidelity": "high"}]}, "tools", "invalid_input_fidelity_model"),
    ({"tools": [{**TOOL, "action": "edit"}]}, "tools", "invalid_value"),
    ({"tools": [{**TOOL, "partial_images": "2"}]}, "tools[0].partial_images", "invalid_type"),
    ({"tools": [{"type": "function", "name": "f"}]}, "tools[0].type", "unsupported_parameter"),
    ({"tools": [TOOL], "tool_choice": "sometimes"}, "tool_choice", "invalid_value"),
    ({"tool_choice": "required"}, "tool_choice", None),
    ({"previous_response_id": "resp_nope"}, "previous_response_id", "previous_response_not_found"),
    ({"input": 42}, "input", "invalid_type"),
    (
        {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "https://x.test/a.png"}]}]},
        "input[0].content[0].image_url",
        "invalid_value",
    ),
    (
        {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "data:image/png;base64,AAAA"}]}]},
        "input[0].content[0].image_url",
        "invalid_image",
    ),
    (
        {"input": [{"role": "assistant", "content": [{"type": "input_image", "image_url": "data:,"}]}]},
        "input[0].content[0]",
        "invalid_value",
    ),
    ({"input": [{"type": "image_generation_call", "id": "ig_unknown"}]}, "input[0].id", "invalid_value"),
    ({"background": True}, "background", "unsupported_parameter"),
    ({"metadata": {str(i): "v" for i in range(17)}}, "metadata", None),
    ({"text": {"format": {"type": "json_schema"}}}, "text.format", "unsupported_parameter"),
    ({"frobnicate": 1}, "frobnicate", "unknown_parameter"),
]


@pytest.mark.parametrize(("extra", "param", "code"), BAD_REQUESTS)
def test_bad_requests_are_named_400s(server: Server, extra: dict[str, Any], param: str, code: str | None) -> None:
    body = {"model": "gpt-5", "input": "draw a cat", **extra}
    r = httpx.post(f"{server.v1}/responses", json=body, timeout=60)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["type"] == "invalid_request_error"
    assert (error["param"], error["code"]) == (param, code), error
    # The same through the SDK's streaming path: still a plain 400 before any event.
    r = httpx.post(f"{server.v1}/responses", json={**body, "stream": True}, timeout=60)
    assert r.status_code == 400 and r.json()["error"]["param"] == param


def test_missing_model_and_input(server: Server) -> None:
    for body, param in (({"input": "x"}, "model"), ({"model": "gpt-5"}, "input")):
        r = httpx.post(f"{server.v1}/responses", json=body, timeout=60)
        assert r.status_code == 400 and r.json()["error"]["code"] == "missing_required_parameter"
        assert r.json()["error"]["param"] == param


def test_a_request_shaped_as_the_agents_sdk_sends_it(server: Server) -> None:
    """The OpenAI Agents SDK (and the Vercel AI SDK) send instructions, top_logprobs with the logprobs include and
    prompt-cache settings: accepted as OpenAI accepts them, and the instructions stay out of the image prompt."""
    instructions = "You are a helpful assistant. You draw what you are asked for."
    r = server.client().responses.create(
        model="gpt-5",
        instructions=instructions,
        input=[{"role": "user", "content": "Draw a red heart"}],
        tools=tools(),
        top_logprobs=2,
        include=["message.output_text.logprobs"],
        prompt_cache_retention="in_memory",
        prompt_cache_options={"ttl": "30m", "mode": "implicit"},
    )
    call = _call(r.output)
    assert r.status == "completed" and call.status == "completed" and call.revised_prompt == "a red heart"
    assert "helpful" not in call.revised_prompt and "draw what" not in call.revised_prompt.lower()
    message = next(o for o in r.output if o.type == "message")
    assert message.content[0].logprobs == []  # the built-in planner has no token probabilities
    assert r.top_logprobs == 2 and r.prompt_cache_retention == "in_memory" and r.instructions == instructions
    assert r.prompt_cache_options is not None and r.prompt_cache_options.ttl == "30m"


@pytest.mark.parametrize(
    "field,value,param,code",
    [
        ("prompt_cache_options", {"prewarm": True}, "prompt_cache_options.prewarm", "unsupported_parameter"),
        ("include", ["message.output_text.everything"], "include[0]", "invalid_value"),
        ("top_logprobs", 21, "top_logprobs", "integer_above_max_value"),
        ("prompt_cache_retention", "forever", "prompt_cache_retention", "invalid_value"),
    ],
)
def test_what_cannot_be_honoured_is_refused_by_name(server: Server, field: str, value: Any, param: str,
                                                    code: str) -> None:  # fmt: skip
    body = {"model": "gpt-5", "input": "Draw a red heart", "tools": [TOOL], field: value}
    r = httpx.post(f"{server.v1}/responses", json=body, timeout=30)
    assert r.status_code == 400 and (r.json()["error"]["param"], r.json()["error"]["code"]) == (param, code), r.text


def test_the_readmes_make_it_blue_edit_gives_a_blue_heart(server: Server) -> None:
    """The multi-turn example of docs/api.md, eight times (seeds are random): "Now make it blue" on a red heart is blue
    in at least 6 of 8, measured as the embedded model's colour tests measure colour; and it keeps the heart."""
    from tests.engines.test_embedded_colours import is_blue, is_red, mean_colour

    client = server.client()
    tool = {"type": "image_generation", "quality": "low", "size": "1024x1024"}
    first = client.responses.create(model="gpt-5", input="Draw a red heart", tools=[tool])  # type: ignore[list-item]
    assert is_red(mean_colour(decode_b64(_call(first.output).result)[0]))
    colours = []
    for _ in range(8):
        edit = client.responses.create(
            model="gpt-5",
            input="Now make it blue",
            previous_response_id=first.id,
            tools=[{**tool, "model": "gpt-image-1", "input_fidelity": "high"}],
        )  # type: ignore[list-item]
        call = _call(edit.output)
        assert call.action == "edit" and call.revised_prompt == "a blue heart"
        colours.append(mean_colour(decode_b64(call.result)[0]))
    assert sum(is_blue(c) for c in colours) >= 6, colours


def test_the_tool_makes_gifs_and_svgs(server: Server) -> None:
    """The tool's newest fields (openai 3.57): frame_count and frame_duration_ms for gif, svg options for svg."""
    import xml.etree.ElementTree as ET

    from PIL import ImageSequence

    client = server.client()
    gif = client.responses.create(model="gpt-5", input="Draw a red apple",
                                  tools=tools(output_format="gif", frame_count=3, frame_duration_ms=90))  # fmt: skip
    call = _call(gif.output)
    img, _ = decode_b64(call.result)
    assert (img.format, img.n_frames, call.output_format) == ("GIF", 3, "gif")
    assert [f.info["duration"] for f in ImageSequence.Iterator(img)] == [90] * 3
    svg = client.responses.create(model="gpt-5", input="Draw a red apple",
                                  tools=tools(output_format="svg", svg={"reasoning": {"effort": "low"}}))  # fmt: skip
    call = _call(svg.output)
    assert ET.fromstring(base64.b64decode(str(call.result))).tag == "{http://www.w3.org/2000/svg}svg"
    assert call.output_format == "svg" and call.model_dump()["svg_usage"]["model"] == "vtracer"
    for bad in (tools(output_format="gif", partial_images=2), tools(output_format="png", frame_count=3),
                tools(complexity="extreme")):  # fmt: skip
        r = httpx.post(f"{server.v1}/responses", json={"model": "gpt-5", "input": "x", "tools": bad}, timeout=60)
        assert r.status_code == 400 and r.json()["error"]["param"] == "tools", r.text
