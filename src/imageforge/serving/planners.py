"""The Responses API's "mainline model": it reads the conversation, decides whether to call the image tool, and
writes the prompt the image model gets (``revised_prompt``) and the assistant's text.

Two planners behind one :class:`Planner` protocol:

* :class:`RulePlanner` (built in, the default for every request ``model``): deterministic and documented.

  1. It calls the tool when the tool is offered and either ``tool_choice`` forces it (``required`` or
     ``{"type": "image_generation"}``), or (``auto``) the latest user message asks for an image: it contains one
     of :data:`IMAGE_WORDS`, or attaches an image. ``tool_choice: "none"`` or no tool: a text answer only.
  2. ``action``: the tool's ``action`` when it is ``generate`` or ``edit``; with ``auto``, ``edit`` when the
     conversation holds an image (the latest one is edited), otherwise ``generate``.
  3. The prompt, always a description of the image to make, never the request: for ``generate``, the latest
     user message without its request phrasing ("Please draw me a picture of a red fox" -> "a red fox",
     :func:`clean_request`); for ``edit``, the prompt of the *result*, the edited image's own prompt rewritten
     by the instruction (:func:`edit_prompt`: "a red heart" + "now make it blue" -> "a blue heart").

  The request's ``instructions`` are a system prompt. The chat-completions planner sends them as its system
  message; the built-in one has no language model to follow them, and does not put them in the image prompt.

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
    "edit_prompt",
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


# -- edits: the prompt of the result ------------------------------------------------------------------------------
# The same colour words as the embedded model's (engines/embedded/colours.py COLOUR_WORDS); serving does not import
# the engines (that module loads torch).
COLOUR_WORDS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white", "grey", "gray")
_SHADES = ("light", "dark", "bright", "pale", "deep")
_COLOUR = rf"(?:(?:{'|'.join(_SHADES)})[\s-]+)?(?:{'|'.join(COLOUR_WORDS)})"
_PRONOUN = r"(?:it|them|this|that|these|those|him|her)"
_WORD = r"[^\W\d_][\w'-]*"
_DETERMINERS = frozenset((
    "a", "an", "the", "one", "two", "three", "four", "five", "six", "some", "many", "several", "my", "your", "his",
    "her", "its", "our", "their", "this", "that", "these", "those",
))  # fmt: skip
_NEW = frozenset(("a", "an", "one", "two", "three", "four", "five", "six", "some", "many", "several"))
_PLACES = frozenset(("with", "wearing", "holding", "and", "in", "on", "of", "at", "under", "over", "near", "by"))


def _obj(group: str) -> str:
    """ "the heart", "its big ears": the named thing (its words in ``group``)."""
    return rf"(?:the|its|his|her|their|this|that)\s+(?P<{group}>{_WORD}(?:\s+{_WORD}){{0,2}}?)"


def _edit_pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


_LEAD = _edit_pattern(
    r"^((no|nope|actually|hmm+|well|instead)\s*,\s*|i\s*('d|would)\s+(like|love|prefer)\s+(you\s+to\s+)?|"
    r"i\s+want\s+(you\s+to\s+)?|let'?s\s+|"
    r"((just\s+)?(like|as)\s+(this|that|it|before)|(the\s+)?same(\s+thing)?)\s*,?\s+but\s+)+"
)
_TAIL = _edit_pattern(r"(\s+(instead|too|as\s+well|now|then|please))+$")
_RECOLOUR = _edit_pattern(
    rf"^(?:(?:make|turn|paint|colou?r|recolou?r|dye|change|switch|do|redo|redraw)\s+"
    rf"(?:(?:{_PRONOUN}|(?:its|the)\s+colou?rs?(?:\s+of\s+(?:{_PRONOUN}|{_obj('of')}))?|{_obj('target')})\s+)?"
    rf"(?:(?:to|into|in)\s+)?(?:be\s+)?|{_PRONOUN}\s+)?(?:in\s+)?(?P<colour>{_COLOUR})$"
)
_ADD = _edit_pattern(
    rf"^(?:(?:add|include)\s+(?!{_PRONOUN}\b)(?P<thing>.+?)(?:\s+(?:to|on|onto)\s+(?:{_PRONOUN}|{_obj('x')}))?"
    rf"|put\s+(?!{_PRONOUN}\b)(?P<put>.+?)\s+(?:on|onto)\s+(?:{_PRONOUN}|{_obj('y')})"
    rf"|give\s+(?:{_PRONOUN}|{_obj('z')})\s+(?P<give>.+)|with\s+(?P<with>.+))$"
)
_REMOVE = _edit_pattern(
    rf"^(?:(?:remove|delete|erase|drop|lose|take\s+(?:away|off|out)|get\s+rid\s+of)\s+(?P<thing>.+?)"
    rf"(?:\s+from\s+(?:{_PRONOUN}|{_obj('x')}))?|take\s+(?P<off>.+?)\s+(?:off|away|out)|(?:without|no)\s+(?P<no>.+))$"
)
_INTO = _edit_pattern(
    rf"^(?:(?:turn|change|transform|convert|make)\s+{_PRONOUN}\s+(?:into|to)\s+(?P<thing>.+)"
    rf"|make\s+{_PRONOUN}\s+(?:be\s+|look\s+like\s+)?(?P<make>(?:an?|one)\s+(?!(?:bit|little|lot|tad)\b).+)"
    rf"|(?:replace|swap)\s+{_PRONOUN}\s+(?:with|for)\s+(?P<replace>.+))$"
)
_SWAP = _edit_pattern(
    rf"^(?:(?:replace|swap)\s+{_obj('old')}\s+(?:with|for)|(?:change|turn)\s+{_obj('old2')}\s+(?:into|to))"
    r"\s+(?P<thing>.+)$"
)
_ADJECTIVE = _edit_pattern(
    rf"^(?:make|turn|render|draw|do|redo|redraw|paint)\s+(?:{_PRONOUN}|{_obj('x')})\s+(?:look\s+)?"
    rf"(?!(?:an?|the)\s+(?!(?:bit|little|lot)\b)|again\b)"  # "make it a star" is a new thing, "make it a bit
    rf"(?P<adjective>(?:(?:a\s+(?:bit|little|lot)|much|slightly|very|more|less|even)\s+)?{_WORD}"  # bigger" a look
    rf"(?:\s+(?:and|or)\s+{_WORD})?)$"
)
_STYLE = _edit_pattern(
    rf"^(?:(?:make|render|draw|do|redo|redraw|paint|show)\s+(?:{_PRONOUN}\s+)?)?(?P<style>(?:in|as)\s+.+)$"
)
_AGAIN = _edit_pattern(
    rf"^((draw|make|do|render|paint|try|redo|redraw)(\s+({_PRONOUN}|one))?(\s+(again|once\s+more))?"
    r"|again|another(\s+one)?|one\s+more|the\s+same(\s+again)?)$"
)
_AND_THEN = _edit_pattern(r"\s*,\s*(?:and\s+)?(?:then\s+)?|\s+and\s+(?:then\s+)?")
_REFERS = _edit_pattern(r"\b(it|its|them|this|that|these|those|one|ones|version|same|another|again|more|less)\b")


def _key(word: str) -> str:
    return word.strip(",.;:!?'\"()").lower()


def _article(det: str, following: str) -> str:
    """ "a"/"an" (the case of ``det`` kept) before ``following``."""
    an = following[:1].lower() in "aeiou"
    word = "an" if an else "a"
    return word.capitalize() if det[:1].isupper() else word


def _fix_article(words: list[str], at: int) -> None:
    """The a/an right before ``words[at]`` made to fit it ("a orange" -> "an orange")."""
    if at > 0 and _key(words[at - 1]) in ("a", "an") and words[at - 1].isalpha():
        words[at - 1] = _article(words[at - 1], words[at])


def _is_colourish(key: str) -> bool:
    parts = key.split("-")
    return any(p in COLOUR_WORDS for p in parts) and all(p in COLOUR_WORDS or p in _SHADES or p == "and" for p in parts)


def _has_colour(phrase: str) -> bool:
    return any(_is_colourish(_key(w)) for w in phrase.split())


def _colour_runs(words: list[str]) -> list[tuple[int, int]]:
    """[start, end) of each run of colour adjectives ("red", "light blue", "red and white", "red-and-white"): colour
    words (with shades, joined by "and") followed by another word. A final colour word is a noun ("an orange")."""
    keys = [_key(w) for w in words]
    runs, i = [], 0
    while i < len(words):
        if not (_is_colourish(keys[i]) or keys[i] in _SHADES):
            i += 1
            continue
        j = i
        while j < len(words) and (_is_colourish(keys[j]) or keys[j] in _SHADES or keys[j] == "and"):
            if words[j][-1:] in ",;:":  # "red, shiny": the run ends at the comma
                j += 1
                break
            j += 1
        end = j
        while end > i and keys[end - 1] in ("and", *_SHADES):
            end -= 1
        if end > i and any(_is_colourish(k) for k in keys[i:end]) and end < len(words):
            runs.append((i, end))
        i = max(j, i + 1)
    return runs


def _head(words: list[str], target: str | None) -> int | None:
    """The index of the target's last word ("the big heart" -> "heart") in ``words``, plurals alike."""
    if not target:
        return None
    head = target.split()[-1].lower()
    if head in ("colour", "color", "colours", "colors", "image", "picture", "drawing"):
        return None
    for i, w in enumerate(words):
        k = _key(w)
        if k == head or k == head + "s" or head == k + "s" or k == head + "es":
            return i
    return None


def _subject_start(words: list[str], end: int) -> int:
    """Where the noun phrase ending at ``end`` begins: after the last determiner, preposition or comma before it."""
    i = end
    while i > 0 and _key(words[i - 1]) not in _DETERMINERS | _PLACES and words[i - 1][-1:] not in ",;:":
        i -= 1
    return i


def _with_colour(source: str, colour: str, target: str | None) -> str:
    """``source`` in ``colour``: the colour adjectives of the named thing (else the first ones) replaced, or the
    colour put before the thing (else after the leading determiners: "a cute cat" -> "a blue cute cat"; without
    guessing parts of speech)."""
    words = source.split()
    head = _head(words, target)
    runs = _colour_runs(words)
    if head is not None:
        start = _subject_start(words, head)
        runs = [(a, b) for a, b in runs if start <= a and b <= head]
        at = head
    else:
        at = 0
        while at < len(words) - 1 and (_key(words[at]) in _DETERMINERS or _key(words[at]).isdigit()):
            at += 1
    if runs:
        a, b = runs[0]
        tail = words[b - 1][len(words[b - 1].rstrip(",;:")) :]
        words[a:b] = [colour + tail]
        _fix_article(words, a)
    else:
        words.insert(at, colour)
        _fix_article(words, at)
    return " ".join(words)


def _split_det(phrase: str) -> tuple[str, str]:
    first, _, rest = phrase.partition(" ")
    return (first, rest) if first.lower() in _DETERMINERS and rest else ("", phrase)


def _noun_phrase(det: str, rest: str) -> str:
    if det.lower() in ("a", "an"):
        det = _article(det, rest)
    return f"{det} {rest}".strip()


def _new_subject(source: str | None, thing: str) -> str:
    """ "turn it into a star": the new thing, in the source's colour when it names none ("a red star")."""
    det, rest = _split_det(thing)
    words = source.split() if source else []
    runs = _colour_runs(words)
    if runs and not _has_colour(rest):
        a, b = runs[0]
        rest = f"{' '.join(words[a:b]).rstrip(',;:')} {rest}"
    return _noun_phrase(det, rest)


def _add(source: str | None, thing: str) -> str:
    if not source:
        return f"the image with {thing}"
    joiner = " and " if re.search(r"\s(with|wearing|holding)\s", source, re.IGNORECASE) else " with "
    return f"{source.rstrip(' ,.')}{joiner}{thing}"


def _remove(source: str | None, thing: str) -> str:
    if not source:
        return f"the image without {thing}"
    _, rest = _split_det(thing)
    det = r"(?:(?:a|an|the|some|its|his|her|their|two|three)\s+)?"
    filler = r"(?:(?!(?:and|with|wearing|holding)\b)[\w'-]+\s+){0,2}?"
    phrase = rf"{det}{filler}{re.escape(rest)}(?:e?s)?\b"
    place = r"(?:with|wearing|holding|in|on)"
    for pattern, repl in (
        (rf"\b({place})\s+{phrase}\s*(?:,\s*|\s+and\s+)", r"\1 "),  # "with a hat and a scarf" -> "with a scarf"
        (rf"(?:\s*,\s*|\s+)and\s+{phrase}", ""),  # "with a scarf and a hat" -> "with a scarf"
        (rf"\s*,?\s+{place}\s+{phrase}", ""),  # "a cat with a hat" -> "a cat"
    ):
        out, count = re.subn(pattern, repl, source, count=1, flags=re.IGNORECASE)
        if count:
            return " ".join(out.split())
    return source


def _swap(source: str, old: str, thing: str) -> str | None:
    words = source.split()
    head = _head(words, old)
    if head is None:
        return None
    _, rest = _split_det(thing)
    start = _subject_start(words, head)
    if not _has_colour(rest):  # the old thing's colour and other adjectives stay
        start = head
    tail = words[head][len(words[head].rstrip(",;:")) :]
    words[start : head + 1] = [rest + tail]
    _fix_article(words, start)
    return " ".join(words)


def edit_prompt(source_prompt: str | None, instruction: str) -> str:
    """The prompt of an edit's result: ``source_prompt`` (the edited image's own prompt; None for an image the
    user attached) rewritten by the user's ``instruction``, request phrasing ("now", "please", "can you") dropped.

    * colour: "make it blue", "turn the heart blue", "change the colour to blue", "recolour it blue", "in blue",
      "blue instead", "paint it blue" -> the colour adjectives replaced ("a red heart" -> "a blue heart"), or the
      colour put before the named thing, else after the leading article ("a cute cat" -> "a blue cute cat");
    * addition: "add a hat", "give it a hat", "put a hat on it" -> "a red heart with a hat";
    * removal: "remove the hat", "take off the hat", "without the hat" -> the source without "with/wearing/holding
      (a) hat", or the source as it is;
    * a new thing: "turn it into a star", "make it a star", "replace it with a star" -> "a red star" (the source's
      colour kept); "replace the hat with a scarf" -> the thing swapped in the source;
    * a look: "make it bigger", "make it watercolor", "in the style of Klimt" -> "a red heart, watercolor";
    * "draw a blue cat instead" (a new description, referring to nothing) -> "a blue cat"; "again" -> the source;
    * anything else: "<source>, <instruction>" ("a red heart, put it on a beach").

    Without a source prompt the instruction's own content: "a blue version of the image" (a colour adjective
    before a noun, which the embedded model recolours by), "the image with a hat", "a star", "the image,
    watercolor", or the instruction itself.
    """
    text = _instruction(instruction)
    source = " ".join(source_prompt.split()).strip(" ,") if source_prompt else None
    if not text:
        return source or "the same image"
    rewritten = _rewrite(source, text)
    if rewritten is not None:
        return rewritten
    if source:  # "make it blue and put it on a beach": the parts understood applied in turn, the others appended
        result, rest = source, []
        for part in map(_instruction, _AND_THEN.split(text)):
            step = _rewrite(result, part) if part else result
            if step is None:
                rest.append(_as_description(part))
            result = step or result
        if result != source:
            return ", ".join([result, *rest])
    described = _REQUEST.sub("", text, count=1)
    if described != text and _split_det(described)[0].lower() in _NEW and not _REFERS.search(described):
        return described  # a new description: "draw a blue cat instead" -> "a blue cat"
    described = _as_description(text)
    return f"{source.rstrip(' ,.')}, {described}" if source else described


def _as_description(text: str) -> str:
    """An instruction appended to a prompt: without "draw"/"make" ("paint a sunset behind it" -> "a sunset behind
    it"), its capital dropped."""
    text = _REQUEST.sub("", text, count=1)
    return text[0].lower() + text[1:] if text[:1].isupper() and not text[1:2].isupper() else text


def _instruction(text: str) -> str:
    """The instruction without its request phrasing: polite openings, "instead", trailing punctuation."""
    text = " ".join(_POLITE.sub("", text.strip(), count=1).split())
    text = _TRAILING.sub("", _LEAD.sub("", text, count=1))
    return _TAIL.sub("", text).strip(" ,.!?")


def _rewrite(source: str | None, text: str) -> str | None:
    """:func:`edit_prompt` for one instruction of a known shape; None for any other."""
    if m := _RECOLOUR.match(text):
        colour, target = " ".join(m["colour"].lower().split()), m["target"] or m["of"]
        if source:
            return _with_colour(source, colour, target)
        return _noun_phrase("a", f"{colour} {target}") if target else f"a {colour} version of the image"
    if m := _REMOVE.match(text):
        return _remove(source, m["thing"] or m["off"] or m["no"])
    if m := _ADD.match(text):
        return _add(source, m["thing"] or m["put"] or m["give"] or m["with"])
    if m := _INTO.match(text):
        return _new_subject(source, m["thing"] or m["make"] or m["replace"])
    if source and (m := _SWAP.match(text)) and (swapped := _swap(source, m["old"] or m["old2"], m["thing"])):
        return swapped
    if _AGAIN.match(text):
        return source or "the same image"
    if m := _ADJECTIVE.match(text) or _STYLE.match(text):
        look = m["adjective"] if "adjective" in m.groupdict() else m["style"]
        return f"{source.rstrip(' ,.')}, {look}" if source else f"the image, {look}"
    return None


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
        # The prompt describes the image to make; ctx.instructions (a system prompt) stays out of it: there is no
        # language model here to follow them, and pasted into the prompt they would be drawn (module docstring).
        if action == "edit":
            prompt = edit_prompt(ctx.source_prompt, text)
        else:
            prompt = clean_request(text) if text.strip() else "an image"
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
