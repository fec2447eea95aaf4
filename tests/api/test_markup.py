"""``markup`` edits through the official SDK: strokes drawn over the image guide the edit, and the pixels under
them change more than the rest; OpenAI's rules as named 400s."""

from __future__ import annotations

import base64
import io

import numpy as np
import openai
import pytest
from PIL import Image, ImageDraw

from tests.api.images import png
from tests.api.server import Server


@pytest.fixture(scope="module")
def picture(server: Server) -> bytes:
    r = server.client().images.generate(model="gpt-image-1", prompt="a green hill under a blue sky", quality="low")
    return base64.b64decode(str(r.data[0].b64_json))


def _strokes(size: tuple[int, int] = (1024, 1024)) -> Image.Image:
    """A thick red scribble over the left third; the rest fully transparent."""
    markup = Image.new("RGBA", size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(markup)
    for y in range(200, 820, 60):
        draw.line([(60, y), (300, y + 40)], fill=(230, 20, 20, 255), width=28)
    return markup


def test_the_pixels_under_the_strokes_change_more_than_the_rest(server: Server, picture: bytes) -> None:
    markup = _strokes()
    r = server.client().images.edit(model="gpt-image-2.5-flare", image=("hill.png", picture, "image/png"),
                                    markup=("markup.png", png(markup), "image/png"),
                                    prompt="a red kite flying over the hill", quality="low")  # fmt: skip
    out = np.asarray(Image.open(io.BytesIO(base64.b64decode(str(r.data[0].b64_json)))).convert("RGB"), np.float32)
    before = np.asarray(Image.open(io.BytesIO(picture)).convert("RGB"), np.float32)
    change = np.abs(out - before).mean(axis=2)
    under = np.asarray(markup.getchannel("A")) > 0
    right = np.zeros_like(under)
    right[:, 640:] = True  # far from every stroke
    assert change[under].mean() > 1.5 * change[right].mean(), (change[under].mean(), change[right].mean())
    redness = out[..., 0] - out[..., 1]
    assert redness[under].mean() > redness[right].mean(), "the strokes' colour guided what was drawn there"


@pytest.mark.parametrize(
    "case,code",
    [
        ("wrong size", "invalid_value"),
        ("no transparency", "invalid_image_file"),
        ("gpt-image-1", "unsupported_parameter"),
    ],
)
def test_markup_refusals(server: Server, picture: bytes, case: str, code: str) -> None:
    model, markup = "gpt-image-2.6-sunburst", _strokes()
    if case == "wrong size":
        markup = _strokes((512, 512))
    elif case == "no transparency":
        markup = Image.new("RGBA", (1024, 1024), (255, 0, 0, 255))
    else:
        model = "gpt-image-1"
    with pytest.raises(openai.BadRequestError) as info:
        server.client().images.edit(model=model, image=("hill.png", picture, "image/png"), prompt="x",
                                    markup=("markup.png", png(markup), "image/png"))  # fmt: skip
    assert (info.value.param, info.value.code) == ("markup", code), info.value.body
