"""output_format "gif" through the official SDK: a real animation of the prompt (the embedded model's walk through
noise space), frame count and per-frame delay read back from the file, and OpenAI's refusals."""

from __future__ import annotations

import base64
import io

import numpy as np
import openai
import pytest
from PIL import Image, ImageSequence

from tests.api.server import Server


def _frames(b64: str | None) -> tuple[Image.Image, list[np.ndarray]]:
    assert b64
    gif = Image.open(io.BytesIO(base64.b64decode(b64)))
    assert gif.format == "GIF"
    frames = [np.asarray(f.convert("RGB"), dtype=np.float32) for f in ImageSequence.Iterator(gif)]
    return gif, frames


def test_a_gif_generation_is_an_animation_of_the_prompt(server: Server) -> None:
    r = server.client().images.generate(model="gpt-image-2.5-flare", prompt="a red apple", quality="low",
                                        output_format="gif", frame_count=4, frame_duration_ms=124)  # fmt: skip
    assert r.output_format == "gif" and r.size == "1024x1024" and len(r.data) == 1
    gif, frames = _frames(r.data[0].b64_json)
    assert gif.n_frames == 4 and gif.size == (1024, 1024)
    durations = []
    for frame in ImageSequence.Iterator(gif):
        durations.append(frame.info["duration"])
    assert durations == [120] * 4, "rounded to 10 ms"
    assert gif.info.get("loop") == 0, "loops forever"
    steps = [float(np.abs(frames[i] - frames[(i + 1) % 4]).mean()) for i in range(4)]
    assert min(steps) > 0.5, f"every frame moves: {steps}"
    assert r.usage is not None and r.usage.output_tokens > 0


def test_n_gifs_are_n_different_animations(server: Server) -> None:
    r = server.client().images.generate(model="gpt-image-2.6-flare", prompt="a yellow star", quality="low",
                                        output_format="gif", frame_count=2, n=2)  # fmt: skip
    assert len(r.data) == 2
    (first, a), (second, b) = _frames(r.data[0].b64_json), _frames(r.data[1].b64_json)
    assert first.n_frames == second.n_frames == 2
    assert float(np.abs(a[0] - b[0]).mean()) > 0.5, "each gif is its own animation (its own subject seed)"


def test_a_gif_edit_animates_the_edited_image(server: Server) -> None:
    base = server.client().images.generate(model="gpt-image-1", prompt="a blue star", quality="low")
    png = base64.b64decode(str(base.data[0].b64_json))
    r = server.client().images.edit(model="gpt-image-2.5-sunburst", image=("star.png", png, "image/png"),
                                    prompt="a blue star, sparkling", quality="low", output_format="gif",
                                    frame_count=3)  # fmt: skip
    gif, frames = _frames(r.data[0].b64_json)
    assert gif.n_frames == 3 and [f.info["duration"] for f in ImageSequence.Iterator(gif)] == [200] * 3
    source = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.float32)
    assert float(np.abs(frames[0] - source).mean()) < 60, "the frames are edits of the given image"
    mask = Image.new("RGBA", (1024, 1024), (0, 0, 0, 0))
    buf = io.BytesIO()
    mask.save(buf, format="PNG")
    with pytest.raises(openai.BadRequestError) as info:
        server.client().images.edit(model="gpt-image-2.5-sunburst", image=("star.png", png, "image/png"),
                                    mask=("mask.png", buf.getvalue(), "image/png"), prompt="x",
                                    output_format="gif")  # fmt: skip
    assert info.value.param == "mask"


@pytest.mark.parametrize(
    "param,kwargs",
    [
        ("frame_count", {"frame_count": 17}),
        ("frame_duration_ms", {"frame_duration_ms": 0}),
        ("output_compression", {"output_compression": 80}),
        ("partial_images", {"partial_images": 1}),
        ("n", {"n": 11}),
    ],
)
def test_gif_refusals_are_named_400s(server: Server, param: str, kwargs: dict[str, object]) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        server.client().images.generate(model="gpt-image-2.5-flare", prompt="x", output_format="gif", **kwargs)  # type: ignore[call-overload]
    assert info.value.param == param and info.value.code == "invalid_value", info.value.body
