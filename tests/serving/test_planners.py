"""The planners: the built-in rules (documented in serving/planners.py) and the chat-completions client."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from imageforge.errors import PlannerError
from imageforge.serving.conversation import ConversationImage, Turn
from imageforge.serving.planners import (
    ChatCompletionsPlanner,
    Plan,
    PlanContext,
    PlannerRouter,
    RulePlanner,
    clean_request,
)


def ctx(text: str, **kw: Any) -> PlanContext:
    fields: dict[str, Any] = {
        "model": "gpt-5", "instructions": None, "turns": [Turn("user", text)], "tool_offered": True,
        "tool_choice": "auto", "action": "auto", "has_image": False, "source_prompt": None,
    }  # fmt: skip
    fields.update(kw)
    return PlanContext(**fields)


def plan(c: PlanContext) -> Plan:
    return asyncio.run(RulePlanner().plan(c))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Draw a red fox", "a red fox"),
        ("Could you please draw me a picture of a red fox?", "a red fox"),
        ("generate an image of two cats please", "two cats"),
        ("make an emoji of a pizza!", "a pizza"),
        ("a lighthouse at night", "a lighthouse at night"),
        ("Now create a painting showing a storm.", "a storm"),
        ("draw", "draw"),  # nothing left: the text as it was
    ],
)
def test_clean_request(text: str, expected: str) -> None:
    assert clean_request(text) == expected


def test_rule_planner_decisions() -> None:
    assert plan(ctx("draw a cat")) == Plan("a cat", "generate", "Here is the image: a cat.")
    assert plan(ctx("what is the capital of France?")).image_prompt is None  # no image words
    assert plan(ctx("hello", tool_choice="required")).image_prompt == "hello"
    assert plan(ctx("draw a cat", tool_choice="none")).image_prompt is None
    assert plan(ctx("draw a cat", tool_offered=False)).image_prompt is None
    with_instructions = plan(ctx("draw a cat", instructions="Pixel art style."))
    assert with_instructions.image_prompt == "a cat, Pixel art style"


def test_rule_planner_edits_the_latest_image() -> None:
    image = ConversationImage("iVBOR", "input[0]", prompt="a red heart", item_id="ig_1")
    turns = [Turn("user", "draw a red heart"), Turn("assistant", "", (image,)), Turn("user", "OK, now make it blue")]
    edit = plan(ctx("", turns=turns, has_image=True, source_prompt="a red heart"))
    assert (edit.image_prompt, edit.action) == ("a red heart, make it blue", "edit")
    forced = plan(ctx("", turns=turns, has_image=True, source_prompt="a red heart", action="generate"))
    assert (forced.image_prompt, forced.action) == ("make it blue", "generate")
    # A user image counts as a request for an image even without image words.
    attached = [Turn("user", "like this but at night", (ConversationImage("data:x", "input[0]"),))]
    assert plan(ctx("", turns=attached, has_image=True)).action == "edit"


def _planner(reply: dict[str, Any] | str, status: int = 200, seen: list[dict[str, Any]] | None = None) -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append({"url": str(request.url), "body": json.loads(request.content), **request.headers})
        if isinstance(reply, str):
            return httpx.Response(status, text=reply)
        return httpx.Response(status, json=reply)

    return ChatCompletionsPlanner(
        "http://llm.test/v1", api_key="k", transport=httpx.MockTransport(handler), upstream_model="m"
    )


def _tool_call(args: str) -> dict[str, Any]:
    call = {"type": "function", "function": {"name": "image_generation", "arguments": args}}
    return {"choices": [{"message": {"role": "assistant", "content": "ok", "tool_calls": [call]}}]}


def test_chat_planner_request_and_tool_call() -> None:
    seen: list[dict[str, Any]] = []
    p = _planner(_tool_call('{"prompt": " a fox ", "action": "edit"}'), seen=seen)
    c = ctx("fox", temperature=0.2, max_output_tokens=50, tool_choice="required")
    result = asyncio.run(p.plan(c))
    assert result == Plan("a fox", "generate", "ok")  # "edit" with no image in the conversation -> generate
    sent = seen[0]
    assert sent["url"] == "http://llm.test/v1/chat/completions" and sent["authorization"] == "Bearer k"
    body = sent["body"]
    assert body["model"] == "m" and body["temperature"] == 0.2 and body["max_tokens"] == 50
    assert body["tool_choice"] == {"type": "function", "function": {"name": "image_generation"}}
    none = asyncio.run(_planner({"choices": [{"message": {"content": "hi"}}]}).plan(ctx("hi", tool_choice="none")))
    assert none == Plan(None, None, "hi")


@pytest.mark.parametrize(
    ("reply", "status"),
    [
        ("upstream exploded", 500),
        ("not json", 200),
        ({"choices": []}, 200),
        (_tool_call("{not json"), 200),
        (_tool_call('{"prompt": ""}'), 200),
    ],
)
def test_chat_planner_failures_are_planner_errors(reply: Any, status: int) -> None:
    with pytest.raises(PlannerError):
        asyncio.run(_planner(reply, status).plan(ctx("draw a fox")))


def test_chat_planner_must_call_a_required_tool() -> None:
    reply = {"choices": [{"message": {"content": "no"}}]}
    with pytest.raises(PlannerError, match="required"):
        asyncio.run(_planner(reply).plan(ctx("x", tool_choice="required")))


def test_router() -> None:
    assert isinstance(PlannerRouter(None, ["*"]).for_model("gpt-5"), RulePlanner)
    router = PlannerRouter("http://llm.test/v1", ["local=llama", "other"])
    local = router.for_model("local")
    assert isinstance(local, ChatCompletionsPlanner) and local.upstream_model == "llama"
    other = router.for_model("other")
    assert isinstance(other, ChatCompletionsPlanner) and other.upstream_model is None
    assert isinstance(router.for_model("gpt-5"), RulePlanner)
    assert isinstance(PlannerRouter("http://llm.test/v1", ["*"]).for_model("gpt-5"), ChatCompletionsPlanner)
