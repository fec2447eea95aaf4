"""complexity through the official SDK: planning before drawing (candidate drafts scored by the model, counted in
``imageforge_plan_drafts_total``) in generations, edits and the Responses tool, inherited from the response's
``reasoning.effort`` where the tool leaves it out, and OpenAI-style refusals."""

from __future__ import annotations

import base64
import io
from typing import Any

import openai
import pytest
from PIL import Image

from tests.api.server import Server

MODEL = "gpt-image-2.6-sunburst"  # also the Responses tool's default model


def _drafts(server: Server, model: str = MODEL) -> float:
    return server.metric("imageforge_plan_drafts_total", model=model)


def _image(b64: str | None) -> Image.Image:
    assert b64
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    image.load()
    return image


def test_complexity_plans_generations_and_edits(server: Server) -> None:
    client = server.client()
    drafted = []
    for complexity, n in (("low", 1), ("medium", 2), ("high", 1)):
        before = _drafts(server)
        r = client.images.generate(model=MODEL, prompt="a red apple", quality="low", size="1024x1024", n=n,
                                   complexity=complexity)  # fmt: skip
        assert len(r.data) == n and all(_image(d.b64_json).size == (1024, 1024) for d in r.data)
        drafted.append(_drafts(server) - before)
    assert drafted == [0, 8, 8], "candidates per image: low 1 (no drafts), medium 4, high 8"
    hill = client.images.generate(model=MODEL, prompt="a hill", quality="low")
    picture = base64.b64decode(str(hill.data[0].b64_json))
    before = _drafts(server, "gpt-image-2.5-flare")
    edit = client.images.edit(model="gpt-image-2.5-flare", image=("hill.png", picture, "image/png"),
                              prompt="a green hill", quality="low", complexity="medium")  # fmt: skip
    assert _image(edit.data[0].b64_json).size == (1024, 1024)
    assert _drafts(server, "gpt-image-2.5-flare") - before == 4


def _tool_call(r: Any) -> Any:
    return next(item for item in r.output if item.type == "image_generation_call")


@pytest.mark.parametrize(
    "tool,reasoning,drafts",
    [
        ({"complexity": "medium"}, None, 4),
        ({}, {"effort": "high"}, 8),  # inherited from the response's reasoning effort
        ({"complexity": "low"}, {"effort": "high"}, 0),  # the tool's own complexity wins
        ({}, {"effort": "minimal"}, 0),  # not a complexity: the model's configured default (low)
    ],
)
def test_the_responses_tool_plans_as_its_complexity_or_the_reasoning_effort_says(
    server: Server, tool: dict[str, Any], reasoning: dict[str, str] | None, drafts: int
) -> None:
    before = _drafts(server)
    extra: dict[str, Any] = {} if reasoning is None else {"reasoning": reasoning}
    r = server.client().responses.create(model="gpt-5", input="draw a blue heart",
                                         tools=[{"type": "image_generation", "quality": "low", **tool}],
                                         **extra)  # type: ignore[list-item]  # fmt: skip
    call = _tool_call(r)
    assert call.status == "completed" and _image(call.result).size == (1024, 1024)
    assert _drafts(server) - before == drafts


@pytest.mark.parametrize(
    "model,value,code",
    [(MODEL, "extreme", "invalid_value"), ("dall-e-3", "low", "unsupported_parameter")],
)
def test_complexity_refusals_name_it(server: Server, model: str, value: str, code: str) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        server.client().images.generate(model=model, prompt="x", complexity=value)  # type: ignore[arg-type]
    assert info.value.param == "complexity" and info.value.code == code, info.value.body
