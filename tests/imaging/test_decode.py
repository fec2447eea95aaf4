"""Decoding client images: formats sniffed from bytes, pixel limits before decoding, clear named errors."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from imageforge.errors import InvalidImageError
from imageforge.imaging.decode import decode_base64_image, decode_data_url, decode_image, repaint_mask


def _bytes(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF"])
def test_accepted_formats_decode_to_rgba(fmt: str) -> None:
    img = decode_image(_bytes(Image.new("RGB", (20, 10), (200, 10, 10)), fmt), "p")
    assert img.mode == "RGBA" and img.size == (20, 10)


def test_data_url_media_type_is_not_trusted() -> None:
    png = _bytes(Image.new("RGB", (4, 4)), "PNG")
    img = decode_data_url("data:image/jpeg;base64," + base64.b64encode(png).decode(), "input[0]")
    assert img.size == (4, 4)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: decode_data_url("https://example.test/a.png", "x"), "data URL"),
        (lambda: decode_data_url("data:image/png,rawtext", "x"), "data URL"),
        (lambda: decode_base64_image("!!!", "x"), "base64"),
        (lambda: decode_image(b"not an image", "x"), "could not be read"),
        (lambda: decode_image(_bytes(Image.new("RGB", (8, 8)), "BMP"), "x"), "could not be read"),
        (lambda: decode_image(_bytes(Image.new("L", (300, 300)), "PNG"), "x", max_pixels=256 * 256), "at most"),
    ],
)
def test_bad_images_are_named_errors(call: object, message: str) -> None:
    with pytest.raises(InvalidImageError, match=message) as e:
        call()  # type: ignore[operator]
    assert e.value.param == "x" and e.value.code == "invalid_image"


def test_animated_gif_is_refused() -> None:
    frames = [Image.new("RGB", (8, 8), (80 * i, 0, 0)) for i in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    with pytest.raises(InvalidImageError, match="animated"):
        decode_image(buf.getvalue(), "x")


def test_repaint_mask_follows_openai_convention() -> None:
    mask = Image.new("RGBA", (2, 1), (0, 0, 0, 255))
    mask.putpixel((1, 0), (0, 0, 0, 0))  # transparent: repaint here
    assert [repaint_mask(mask).getpixel((x, 0)) for x in range(2)] == [0, 255]
