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
    edit_prompt,
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


@pytest.mark.parametrize("action", ["generate", "edit"])
@pytest.mark.parametrize("instructions", ["You draw what you are asked for.", "Pixel art style.", "  Be brief  "])
def test_rule_planner_never_puts_instructions_in_the_prompt(action: str, instructions: str) -> None:
    """``instructions`` are a system prompt: the built-in planner has no language model to follow them, and in the
    image prompt they would be drawn."""
    turns = [Turn("user", "draw a red heart"), Turn("assistant", "", (ConversationImage("x", "i", "a red heart"),)),
             Turn("user", "make it blue")]  # fmt: skip
    c = ctx("", turns=turns, has_image=True, source_prompt="a red heart", action=action, instructions=instructions)
    result = plan(c)
    assert result.image_prompt == ("a blue heart" if action == "edit" else "make it blue")
    assert result.message is not None and instructions.strip().rstrip(".") not in result.message
    assert plan(ctx("draw a cat", instructions=instructions)) == Plan("a cat", "generate", "Here is the image: a cat.")


def test_rule_planner_edits_the_latest_image() -> None:
    image = ConversationImage("iVBOR", "input[0]", prompt="a red heart", item_id="ig_1")
    turns = [Turn("user", "draw a red heart"), Turn("assistant", "", (image,)), Turn("user", "OK, now make it blue")]
    edit = plan(ctx("", turns=turns, has_image=True, source_prompt="a red heart"))
    assert edit == Plan("a blue heart", "edit", "Here is the edited image: a blue heart.")  # the result's prompt
    forced = plan(ctx("", turns=turns, has_image=True, source_prompt="a red heart", action="generate"))
    assert (forced.image_prompt, forced.action) == ("make it blue", "generate")
    # A user image counts as a request for an image even without image words.
    attached = [Turn("user", "like this but at night", (ConversationImage("data:x", "input[0]"),))]
    edit = plan(ctx("", turns=attached, has_image=True))
    assert edit == Plan("at night", "edit", "Here is the edited image: at night.")  # no source prompt


# (source prompt, the user's words) -> the edited image's prompt
EDITS = [
    # colour changes: the colour adjective replaced, or put before the noun ("a cute cat": after the article)
    ("a red heart", "now make it blue", "a blue heart"),
    ("a red heart", "make it blue", "a blue heart"),
    ("a red heart", "Turn it blue.", "a blue heart"),
    ("a red heart", "make the heart blue", "a blue heart"),
    ("a red heart", "change the colour to blue", "a blue heart"),
    ("a red heart", "change the color to blue", "a blue heart"),
    ("a red heart", "change it to blue", "a blue heart"),
    ("a red heart", "recolor it blue", "a blue heart"),
    ("a red heart", "please recolour it blue", "a blue heart"),
    ("a red heart", "now in blue", "a blue heart"),
    ("a red heart", "blue instead", "a blue heart"),
    ("a red heart", "Can you paint it blue?", "a blue heart"),
    ("a red heart", "change the colour of the heart to light blue", "a light blue heart"),
    ("a red heart", "I'd like it in green", "a green heart"),
    ("a heart", "make it blue", "a blue heart"),
    ("a cute cat", "make it blue", "a blue cute cat"),
    ("an apple", "make it orange", "an orange apple"),
    ("a red apple", "make it orange", "an orange apple"),
    ("two cats", "make them orange", "two orange cats"),
    ("a lighthouse at night", "make it red", "a red lighthouse at night"),
    ("a red and white striped ball", "make it blue", "a blue striped ball"),
    ("a cat with a red hat", "make the hat blue", "a cat with a blue hat"),
    ("a cat with a hat", "make the hat blue", "a cat with a blue hat"),
    ("A Red Heart", "MAKE IT BLUE", "A blue Heart"),
    # additions
    ("a red heart", "add a hat", "a red heart with a hat"),
    ("a red heart", "give it a hat", "a red heart with a hat"),
    ("a red heart", "put a hat on it", "a red heart with a hat"),
    ("a green tree", "add snow", "a green tree with snow"),
    ("a red heart with a hat", "add a scarf too", "a red heart with a hat and a scarf"),
    # removals: the phrase taken out when the prompt has it, else the prompt as it is
    ("a red heart with a hat", "remove the hat", "a red heart"),
    ("a cat wearing a hat", "remove the hat", "a cat"),
    ("a cat wearing a big red hat", "take off the hat", "a cat"),
    ("a cat with a hat and a scarf", "remove the hat", "a cat with a scarf"),
    ("a cat with a hat and a scarf", "get rid of the scarf", "a cat with a hat"),
    ("a cat with a hat", "without the hat", "a cat"),
    ("a red heart", "remove the hat", "a red heart"),
    # a look (a non-colour adjective or a style) appended
    ("a red heart", "make it bigger", "a red heart, bigger"),
    ("a red heart", "make it smaller", "a red heart, smaller"),
    ("a red heart", "make it realistic", "a red heart, realistic"),
    ("a red heart", "make it watercolor", "a red heart, watercolor"),
    ("a red heart", "make it a bit bigger", "a red heart, a bit bigger"),
    ("a red heart", "make it look more realistic", "a red heart, more realistic"),
    ("a red heart", "in the style of Klimt", "a red heart, in the style of Klimt"),
    # a new thing, in the source's colour unless it names its own
    ("a red heart", "turn it into a star", "a red star"),
    ("a red heart", "make it a star", "a red star"),
    ("a red heart", "replace it with a star", "a red star"),
    ("a red heart", "turn it into an owl", "a red owl"),
    ("a heart", "turn it into an owl", "an owl"),
    ("a red heart", "turn it into a blue star", "a blue star"),
    ("a cat with a hat", "replace the hat with an umbrella", "a cat with an umbrella"),
    # several instructions, each in turn
    ("a red heart", "make it blue and add a hat", "a blue heart with a hat"),
    ("a red heart", "make it blue, then turn it into a star", "a blue star"),
    ("a red heart", "make it blue and put it on a beach", "a blue heart, put it on a beach"),
    # a new description; the same again; anything else appended, without its request phrasing
    ("a red heart", "draw a blue cat instead", "a blue cat"),
    ("a red heart", "draw it again", "a red heart"),
    ("a red heart", "", "a red heart"),
    ("a red heart", "Please put it on a beach.", "a red heart, put it on a beach"),
    ("a red heart", "could you paint a sunset behind it?", "a red heart, a sunset behind it"),
    ("a red heart", "like this but at night", "a red heart, at night"),
    ("a red heart", "the same, but in blue", "a blue heart"),
    ("a red heart", "just like this but blue", "a blue heart"),
    # no source prompt (an image the user attached): the instruction's own content
    (None, "make it blue", "a blue version of the image"),
    (None, "make the car blue", "a blue car"),
    (None, "add a hat", "the image with a hat"),
    (None, "remove the hat", "the image without the hat"),
    (None, "turn it into a star", "a star"),
    (None, "make it watercolor", "the image, watercolor"),
    (None, "please put it on a beach", "put it on a beach"),
    (None, "", "the same image"),
]


@pytest.mark.parametrize(("source", "instruction", "expected"), EDITS)
def test_edit_prompt(source: str | None, instruction: str, expected: str) -> None:
    assert edit_prompt(source, instruction) == expected


@pytest.mark.parametrize(("source", "instruction", "expected"), EDITS)
def test_rule_planner_edits_write_the_result_prompt(source: str | None, instruction: str, expected: str) -> None:
    image = ConversationImage("iVBOR", "input[0]", prompt=source, item_id="ig_1")
    turns = [Turn("assistant", "", (image,)), Turn("user", instruction)]
    result = plan(ctx("", turns=turns, has_image=True, source_prompt=source, tool_choice="required"))
    assert (result.image_prompt, result.action) == (expected, "edit")


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
