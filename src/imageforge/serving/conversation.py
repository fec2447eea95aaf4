"""The conversation a Responses request continues: stored turns (``previous_response_id``), referenced items and
the new input, as plain turns the planners read, and the images an edit can start from.

Input items are first *normalised* to the JSON shape they are stored in (``message`` items with ``msg_`` ids and
their content parts; referenced ``image_generation_call`` items copied in whole, with their image), so a stored
conversation is self-contained and reads back through the same code as a new one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from imageforge.errors import InvalidRequestError
from imageforge.ids import new_id
from imageforge.protocol.responses import InputItem, InputMessage, ItemReference

__all__ = ["ConversationImage", "Turn", "latest_image", "normalise_input", "turns_from_items"]


@dataclass(frozen=True)
class ConversationImage:
    """An image in the conversation: a user's ``input_image`` or an earlier ``image_generation_call`` result."""

    data: str  # a data URL (user images) or base64 (generated images)
    param: str  # where it came from, for error messages
    prompt: str | None = None  # the prompt a generated image was made from
    item_id: str | None = None

    @property
    def is_data_url(self) -> bool:
        return self.data.startswith("data:")


@dataclass(frozen=True)
class Turn:
    role: str  # user, assistant, system, developer
    text: str
    images: tuple[ConversationImage, ...] = ()


def _message_item(msg: InputMessage) -> dict[str, Any]:
    part = "output_text" if msg.role == "assistant" else "input_text"
    content: list[dict[str, Any]] = [{"type": part, "text": msg.text}] if msg.text else []
    content += [{"type": "input_image", "image_url": i.image_url, "detail": i.detail or "auto"} for i in msg.images]
    return {"type": "message", "id": msg.id or new_id("msg"), "role": msg.role, "content": content}


def normalise_input(items: Iterable[InputItem], lookup: Callable[[str], dict[str, Any] | None]) -> list[dict[str, Any]]:
    """Input items -> stored JSON items; references are resolved with ``lookup`` (blocking: the store)."""
    out: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, InputMessage):
            out.append(_message_item(item))
            continue
        assert isinstance(item, ItemReference)
        if item.result is not None:  # the client sent the image itself
            out.append({"type": "image_generation_call", "id": item.id, "status": "completed", "result": item.result})
            continue
        found = lookup(item.id)
        if found is None:
            raise InvalidRequestError(
                f"Item with id '{item.id}' not found. Items are only kept for stored responses (store: true).",
                param=f"{item.where}.id",
                code="invalid_value",
            )
        out.append(found)
    return out


def turns_from_items(items: Iterable[Mapping[str, Any]], where: str = "input") -> list[Turn]:
    """Stored JSON items (input or output) -> turns, in order."""
    turns: list[Turn] = []
    for i, item in enumerate(items):
        kind = item.get("type")
        if kind == "message":
            texts, images = [], []
            for j, part in enumerate(item.get("content", ())):
                if part.get("type") == "input_image":
                    images.append(ConversationImage(part["image_url"], f"{where}[{i}].content[{j}].image_url"))
                elif isinstance(part.get("text"), str):
                    texts.append(part["text"])
            turns.append(Turn(str(item.get("role", "user")), "\n".join(texts), tuple(images)))
        elif kind == "image_generation_call" and item.get("result"):
            image = ConversationImage(item["result"], f"{where}[{i}]", item.get("revised_prompt"), item.get("id"))
            turns.append(Turn("assistant", "", (image,)))
    return turns


def latest_image(turns: Iterable[Turn]) -> ConversationImage | None:
    """The image an edit starts from: the most recent one in the conversation."""
    found = None
    for turn in turns:
        if turn.images:
            found = turn.images[-1]
    return found
