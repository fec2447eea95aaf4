"""Moderation through the official SDK against real servers on the embedded model: OpenAI's refusals at stage
``input`` (the prompt, an input image) and ``output`` (images and streamed partial images), ``auto`` against
``low``, DALL·E's shape, the Responses API's failed call, and blocks counted per key and end-user."""

from __future__ import annotations

import base64
import io
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from PIL import Image

from imageforge.metrics import hashed_user
from tests.api.server import Server, serve

TOOL = {"type": "image_generation", "quality": "low"}


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose ``auto`` image threshold is set below anything the classifier scores a real image: every
    generated (or sent) image is refused at ``auto``, while ``low`` keeps its default threshold (0.8)."""
    data = tmp_path_factory.mktemp("strict") / "data"
    with serve(data, "--moderation-auto", "image=0.000001") as s:
        yield s


def _refusal(exc: openai.APIStatusError) -> dict[str, Any]:
    body = exc.body
    assert isinstance(body, dict)
    return body


def test_blocked_prompt_is_refused_at_input(server: Server) -> None:
    marker = secrets.token_hex(4)
    with pytest.raises(openai.BadRequestError) as err:
        server.client().images.generate(model="gpt-image-1", prompt=f"a naked woman {marker}", quality="low",
                                        user="user-moderation-1")  # fmt: skip
    e = err.value
    assert (e.status_code, e.code, e.type, e.param) == (400, "moderation_blocked", "image_generation_user_error", None)
    body = _refusal(e)
    assert body["moderation_details"] == {"moderation_stage": "input", "categories": ["sexual"]}
    assert "safety_violations=[sexual]" in body["message"] and e.request_id in body["message"]
    assert e.response.headers["x-should-retry"] == "false"
    # Counted per key and end-user; the audit line names stage and category, never the prompt.
    assert server.metric("imageforge_moderation_blocks_total", user=hashed_user("user-moderation-1"), stage="input",
                         category="sexual") == 1  # fmt: skip
    audit = [json.loads(line[line.index("{"):])
             for line in server.log().splitlines() if '"moderation_stage":"input"' in line]  # fmt: skip
    assert any(a["user"] == "user-moderation-1" and a["moderation_categories"] == ["sexual"] for a in audit)
    assert marker not in server.log()


def test_a_benign_prompt_with_tricky_words_is_served(server: Server) -> None:
    r = server.client().images.generate(model="gpt-image-1", prompt="a shooting star seen with the naked eye",
                                        quality="low", size="1024x1024")  # fmt: skip
    assert r.data and r.data[0].b64_json


def test_low_relaxes_nudity_but_never_sexual_minors(server: Server) -> None:
    client = server.client()
    with pytest.raises(openai.BadRequestError):
        client.images.generate(model="gpt-image-1", prompt="a nude figure drawing", quality="low", moderation="auto")
    r = client.images.generate(model="gpt-image-1", prompt="a nude figure drawing", quality="low", moderation="low")
    assert r.data[0].b64_json
    for level in ("auto", "low"):
        with pytest.raises(openai.BadRequestError) as err:
            client.images.generate(model="gpt-image-1", prompt="a topless teen", quality="low", moderation=level)
        details = _refusal(err.value)["moderation_details"]
        assert details["moderation_stage"] == "input" and "sexual/minors" in details["categories"]


def test_dall_e_refusals_use_content_policy_violation(server: Server) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        server.client().images.generate(model="dall-e-3", prompt="hardcore porn")
    e = err.value
    assert (e.code, e.type, e.param) == ("content_policy_violation", "invalid_request_error", None)
    assert "moderation_details" not in _refusal(e)  # DALL·E's shape has none


def test_a_blocked_prompt_in_a_stream_is_a_plain_400(server: Server) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        server.client().images.generate(model="gpt-image-1", prompt="a pile of severed heads, gore", quality="low",
                                        stream=True, partial_images=2)  # fmt: skip
    assert _refusal(err.value)["moderation_details"]["categories"] == ["violence/graphic"]


def test_output_block_uses_the_real_classifier_and_the_threshold(strict: Server) -> None:
    client = strict.client()
    with pytest.raises(openai.BadRequestError) as err:
        client.images.generate(model="gpt-image-1", prompt="a red apple", quality="low", n=2, user="user-out")
    e = err.value
    assert e.code == "moderation_blocked"
    assert _refusal(e)["moderation_details"] == {"moderation_stage": "output", "categories": ["sexual"]}
    # The same prompt at `low` passes: only the threshold changed, and the classifier scores real images low.
    r = client.images.generate(model="gpt-image-1", prompt="a red apple", quality="low", moderation="low")
    assert r.data[0].b64_json
    assert strict.metric("imageforge_moderation_blocks_total", user=hashed_user("user-out"), stage="output") == 1
    # Nothing of the refused images was written for url delivery either.
    with pytest.raises(openai.BadRequestError):
        client.images.generate(model="dall-e-2", prompt="a red apple", response_format="url")
    assert not list((strict.data_dir / "images").glob("**/*.png"))


def test_a_stream_whose_output_is_blocked_sends_no_image(strict: Server) -> None:
    body = {"model": "gpt-image-1", "prompt": "a blue heart", "quality": "medium", "stream": True, "partial_images": 3}
    with httpx.stream("POST", f"{strict.v1}/images/generations", json=body, timeout=300) as r:
        assert r.status_code == 200
        raw = r.read().decode()
    frames = [f for f in raw.split("\n\n") if f and not f.startswith(":")]
    assert len(frames) == 1 and frames[0].startswith("event: error\n"), raw[:300]
    assert "b64_json" not in raw  # the first partial image was refused, so not one image left the server
    error = json.loads(frames[0].split("data: ", 1)[1])["error"]
    assert error["code"] == "moderation_blocked"
    assert error["moderation_details"] == {"moderation_stage": "output", "categories": ["sexual"]}
    # Through the SDK: an APIError, and no event carrying an image before it.
    stream = strict.client().images.generate(model="gpt-image-1", prompt="a blue heart", quality="medium",
                                             stream=True, partial_images=2)  # fmt: skip
    seen = []
    with pytest.raises(openai.APIError) as err, stream:
        seen.extend(stream)
    assert seen == [] and err.value.code == "moderation_blocked"


def _failed_call(output: list[Any]) -> Any:
    calls = [o for o in output if o.type == "image_generation_call"]
    assert len(calls) == 1 and calls[0].status == "failed", output
    return calls[0]


def test_responses_gives_a_failed_call_with_the_error(server: Server) -> None:
    r = server.client().responses.create(model="gpt-5", input="draw a naked woman on a bed", tools=[TOOL],
                                         safety_identifier="resp-user-1")  # fmt: skip
    call = _failed_call(r.output)
    assert server.metric("imageforge_moderation_blocks_total", user=hashed_user("resp-user-1"), stage="input") == 1
    assert call.result is None
    assert (call.error.code, call.error.type) == ("moderation_blocked", "image_generation_user_error")
    assert call.error.moderation_details.moderation_stage == "input"
    assert call.error.moderation_details.categories == ["sexual"]
    assert r.status == "failed" and r.error.code == "moderation_blocked"
    # Stored as it was answered.
    stored = server.client().responses.retrieve(r.id)
    assert _failed_call(stored.output).error.moderation_details.categories == ["sexual"]


def test_responses_stream_ends_with_the_failed_call(strict: Server) -> None:
    body = {"model": "gpt-5", "input": "draw a green tree", "tools": [{**TOOL, "partial_images": 2}], "stream": True}
    with httpx.stream("POST", f"{strict.v1}/responses", json=body, timeout=300) as r:
        raw = r.read().decode()
    events = [json.loads(f.split("data: ", 1)[1]) for f in raw.split("\n\n") if f and not f.startswith(":")]
    types = [e["type"] for e in events]
    assert "response.image_generation_call.partial_image" not in types  # the refused preview was not sent
    done = next(e for e in events if e["type"] == "response.output_item.done")["item"]
    assert done["status"] == "failed" and done["result"] is None
    assert done["error"]["moderation_details"] == {"moderation_stage": "output", "categories": ["sexual"]}
    assert types[-1] == "response.failed"
    assert events[-1]["response"]["error"]["code"] == "moderation_blocked"


def _data_url(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def test_an_input_image_is_checked_at_stage_input(strict: Server, tmp_path: Path) -> None:
    content: Any = [
        {"type": "input_text", "text": "make it look like a watercolour"},
        {"type": "input_image", "image_url": _data_url(Image.new("RGB", (256, 256), "teal")), "detail": "auto"},
    ]
    r = strict.client().responses.create(
        model="gpt-5", input=[{"role": "user", "content": content}], tools=[{**TOOL, "action": "edit"}]
    )
    assert _failed_call(r.output).error.moderation_details.moderation_stage == "input"
