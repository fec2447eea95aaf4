"""The Responses API's "mainline model": it reads the conversation, decides whether to call the image tool, and
writes the prompt the image model gets (``revised_prompt``) and the assistant's text.

Two planners behind one :class:`Planner` protocol:

* :class:`RulePlanner` (built in, the default for every request ``model``): deterministic and documented.

  1. It calls the tool when the tool is offered and either ``tool_choice`` forces it (``required`` or
     ``{"type": "image_generation"}``), or (``auto``) the latest user message asks for an image: it contains one
     of :data:`IMAGE_WORDS`, or attaches an image. ``tool_choice: "none"`` or no tool: a text answer only.
  2. ``action``: the tool's ``action`` when it is ``generate`` or ``edit``; with ``auto``, ``edit`` when the
     conversation holds an image (the latest one is edited), otherwise ``generate``.
  3. The prompt: the latest user message without its request phrasing ("Please draw me a picture of a red
     fox" -> "a red fox"); for an edit, the edited image's own prompt followed by the instruction ("a red heart,
     make it blue"); then ``instructions``, appended after a comma (it has no language model to interpret them).

* :class:`ChatCompletionsPlanner`: any OpenAI-compatible ``/chat/completions`` endpoint (a local LLM server),
  sent the conversation and the tool as a function schema; its tool call's ``prompt`` (and ``action``) and its
  text are used as they are.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import httpx

from imageforge.errors import PlannerError
from imageforge.serving.conversation import Turn

__all__ = [
    "IMAGE_WORDS",
    "ChatCompletionsPlanner",
    "Plan",
    "PlanContext",
    "Planner",
    "PlannerRouter",
    "RulePlanner",
    "clean_request",
]

Action = Literal["generate", "edit"]
ToolChoice = Literal["auto", "none", "required"]

IMAGE_WORDS = (
    "draw", "drawing", "paint", "painting", "sketch", "illustrate", "illustration", "render", "generate", "create",
    "make", "design", "picture", "image", "photo", "icon", "logo", "emoji", "portrait", "edit", "change", "turn",
    "add", "remove", "replace", "recolor", "recolour", "redraw", "another", "again",
)  # fmt: skip
_IMAGE_WORD = re.compile(r"\b(" + "|".join(IMAGE_WORDS) + r")s?\b", re.IGNORECASE)
_POLITE = re.compile(
    r"^\s*((ok(ay)?|now|and|then|so|great)\b[,\s]*)*(please\s+)?((can|could|would|will)\s+you\s+)?(please\s+)?",
    re.IGNORECASE,
)
_REQUEST = re.compile(
    r"^(draw|paint|sketch|illustrate|render|generate|create|design|make|show)(\s+(me|us))?"
    r"(\s+(an?|the|one)\s+(image|picture|photo(graph)?|drawing|painting|illustration|icon|emoji|sketch|"
    r"render(ing)?)\s+(of|showing|with))?\s+(?!(it|its|this|that|them|these|those)\b)",  # "make it blue" stays
    re.IGNORECASE,
)
_TRAILING = re.compile(r"[\s,.!?]*(please)?[\s.!?]*$", re.IGNORECASE)


@dataclass(frozen=True)
class PlanContext:
    model: str  # the request's `model` (the planner's name for itself)
    instructions: str | None
    turns: Sequence[Turn]  # oldest first; the new input last
    tool_offered: bool
    tool_choice: ToolChoice  # "required" also when the image tool is forced by name
    action: Literal["generate", "edit", "auto"]
    has_image: bool  # an image in the conversation that an edit could start from
    source_prompt: str | None  # that image's prompt, when it was generated here
    temperature: float | None = None
    top_p: float | None = None
    max_output_tokens: int | None = None


@dataclass(frozen=True)
class Plan:
    image_prompt: str | None  # None: no tool call
    action: Action | None
    message: str | None  # the assistant's text (after the image, when there is one)


class Planner(Protocol):
    # A deterministic planner's plan depends on the request alone, so the service asks it before the stream
    # starts and checks the image request it makes; a remote one is asked after the first byte.
    deterministic: bool

    async def plan(self, ctx: PlanContext) -> Plan: ...


def _latest_user(turns: Sequence[Turn]) -> Turn | None:
    return next((t for t in reversed(turns) if t.role == "user"), None)


def _decide_action(ctx: PlanContext, wanted: str | None = None) -> Action:
    if ctx.action in ("generate", "edit"):
        return ctx.action
    if wanted in ("generate", "edit"):
        return "edit" if wanted == "edit" and ctx.has_image else "generate"
    return "edit" if ctx.has_image else "generate"


def clean_request(text: str) -> str:
    """ "Could you please draw me a picture of a red fox?" -> "a red fox" (the phrasing of a request is not part
    of the image)."""
    core = _POLITE.sub("", text.strip(), count=1)
    core = _REQUEST.sub("", core, count=1)
    core = _TRAILING.sub("", core)
    return " ".join(core.split()) or " ".join(text.split())


class RulePlanner:
    """The built-in, deterministic planner (module docstring, steps 1-3)."""

    deterministic = True

    async def plan(self, ctx: PlanContext) -> Plan:
        user = _latest_user(ctx.turns)
        text = user.text if user is not None else ""
        if not ctx.tool_offered or ctx.tool_choice == "none":
            return Plan(None, None, "I can make and edit images here: offer the image_generation tool and tell me "
                        "what to draw.")  # fmt: skip
        asks = ctx.tool_choice == "required" or bool(_IMAGE_WORD.search(text))
        asks |= user is not None and bool(user.images)
        if not asks:
            return Plan(None, None, "Tell me what you would like me to draw, and I will make an image of it.")
        action = _decide_action(ctx)
        request = " ".join(_POLITE.sub("", text.strip(), count=1).split())
        request = _TRAILING.sub("", request) or request
        if action == "edit":
            prompt = f"{ctx.source_prompt}, {request}" if ctx.source_prompt and request else (
                request or ctx.source_prompt or "the same image")  # fmt: skip
        else:
            prompt = clean_request(text) if text.strip() else "an image"
        if ctx.instructions and ctx.instructions.strip():
            prompt = f"{prompt}, {ctx.instructions.strip().rstrip('.')}"
        done = "Here is the edited image" if action == "edit" else "Here is the image"
        return Plan(prompt, action, f"{done}: {prompt}.")


# The image tool as a chat-completions function (what a local LLM sees).
TOOL_FUNCTION = {
    "type": "function",
    "function": {
        "name": "image_generation",
        "description": "Generate an image, or edit the latest image in the conversation, from a text prompt.",
        "parameters": {
            "type": "object",
            "properties": {
                "prompt": {"type": "string", "description": "A complete description of the image to make."},
                "action": {"type": "string", "enum": ["generate", "edit"]},
            },
            "required": ["prompt"],
        },
    },
}
_SYSTEM = (
    "You can call the image_generation tool to draw an image or to edit the latest image in the conversation. "
    "When you call it, write a complete, self-contained prompt describing the image to make."
)


class ChatCompletionsPlanner:
    """A planner that asks an OpenAI-compatible chat-completions server (``{url}/chat/completions``)."""

    deterministic = False

    def __init__(
        self,
        url: str,
        *,
        upstream_model: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        base = url.rstrip("/")
        self.endpoint = base if base.endswith("/chat/completions") else f"{base}/chat/completions"
        self.upstream_model = upstream_model
        self.headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self.timeout_s = timeout_s
        self.transport = transport

    def request_body(self, ctx: PlanContext) -> dict[str, Any]:
        system = _SYSTEM + (f"\n\n{ctx.instructions}" if ctx.instructions else "")
        messages: list[dict[str, Any]] = [{"role": "system", "content": system}]
        for turn in ctx.turns:
            text = turn.text
            if turn.images and turn.role == "user":
                text = f"{text}\n[the user attached {len(turn.images)} image(s)]".strip()
            elif turn.images:
                text = f"[image generated from the prompt: {turn.images[-1].prompt or 'unknown'}]"
            role = "system" if turn.role == "developer" else turn.role
            messages.append({"role": role, "content": text})
        body: dict[str, Any] = {"model": self.upstream_model or ctx.model, "messages": messages}
        if ctx.tool_offered and ctx.tool_choice != "none":
            body["tools"] = [TOOL_FUNCTION]
            body["tool_choice"] = (
                {"type": "function", "function": {"name": "image_generation"}}
                if ctx.tool_choice == "required"
                else "auto"
            )
        for key, value in (("temperature", ctx.temperature), ("top_p", ctx.top_p)):
            if value is not None:
                body[key] = value
        if ctx.max_output_tokens is not None:
            body["max_tokens"] = ctx.max_output_tokens
        return body

    async def plan(self, ctx: PlanContext) -> Plan:
        body = self.request_body(ctx)
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s, transport=self.transport) as client:
                reply = await client.post(self.endpoint, json=body, headers=self.headers)
        except httpx.HTTPError as exc:
            raise PlannerError(f"The planner at {self.endpoint} could not be reached: {exc}") from exc
        if reply.status_code != 200:
            raise PlannerError(f"The planner at {self.endpoint} answered {reply.status_code}: {reply.text[:300]}")
        try:
            message = reply.json()["choices"][0]["message"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise PlannerError(f"The planner at {self.endpoint} sent no chat completion: {reply.text[:300]}") from None
        text = message.get("content") or None
        for call in message.get("tool_calls") or ():
            fn = call.get("function") or {}
            if fn.get("name") != "image_generation":
                continue
            try:
                args = json.loads(fn.get("arguments") or "{}")
            except json.JSONDecodeError:
                raise PlannerError(
                    f"The planner's tool call has invalid JSON arguments: {fn.get('arguments')!r}"
                ) from None
            prompt = args.get("prompt") if isinstance(args, dict) else None
            if not isinstance(prompt, str) or not prompt.strip():
                raise PlannerError("The planner called image_generation without a prompt.")
            return Plan(prompt.strip(), _decide_action(ctx, args.get("action")), text)
        if ctx.tool_choice == "required" and ctx.tool_offered:
            raise PlannerError("The image tool was required, but the planner did not call it.")
        return Plan(None, None, text or "")


class PlannerRouter:
    """Which planner answers a request's ``model``: the chat-completions planner for the configured ids (``*``:
    all; ``id=upstream`` renames the model sent upstream), the built-in one for every other id, since clients
    send ``gpt-4.1``, ``gpt-5`` and the like."""

    def __init__(self, chat_url: str | None, chat_models: Sequence[str], **chat_options: Any) -> None:
        self.builtin = RulePlanner()
        self.chat_url = chat_url
        self.chat_options = chat_options
        self.routes: dict[str, str | None] = {}
        for entry in chat_models:
            name, _, upstream = entry.partition("=")
            self.routes[name.strip()] = upstream.strip() or None

    def for_model(self, model: str) -> Planner:
        if self.chat_url is None:
            return self.builtin
        if model in self.routes:
            return ChatCompletionsPlanner(self.chat_url, upstream_model=self.routes[model], **self.chat_options)
        if "*" in self.routes:
            return ChatCompletionsPlanner(self.chat_url, upstream_model=self.routes["*"], **self.chat_options)
        return self.builtin
