from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from imageforge.imaging.encode import encode


def _rgba() -> Image.Image:
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (64, 64, 4), dtype=np.uint8)
    arr[:16, :, 3] = 0
    return Image.fromarray(arr, "RGBA")


@pytest.mark.parametrize("fmt,magic", [("png", b"\x89PNG"), ("jpeg", b"\xff\xd8\xff"), ("webp", b"RIFF")])
def test_formats_decode_back_at_the_same_size(fmt: str, magic: bytes) -> None:
    img = _rgba().convert("RGB")
    data = encode(img, fmt)  # type: ignore[arg-type]
    assert data.startswith(magic)
    back = Image.open(io.BytesIO(data))
    assert back.format == fmt.upper() and back.size == (64, 64)


@pytest.mark.parametrize("fmt", ["png", "webp"])
def test_alpha_survives_png_and_webp(fmt: str) -> None:
    img = _rgba()
    back = Image.open(io.BytesIO(encode(img, fmt)))  # type: ignore[arg-type]
    assert back.mode == "RGBA"
    assert np.array_equal(np.asarray(back.getchannel("A")), np.asarray(img.getchannel("A")))


def test_jpeg_refuses_real_transparency() -> None:
    with pytest.raises(ValueError, match="transparency"):
        encode(_rgba(), "jpeg")
    opaque = _rgba()
    opaque.putalpha(255)
    assert encode(opaque, "jpeg").startswith(b"\xff\xd8")


@pytest.mark.parametrize("fmt", ["jpeg", "webp", "png"])
def test_compression_changes_the_bytes(fmt: str) -> None:
    img = _rgba().convert("RGB")
    high, low = encode(img, fmt, 100), encode(img, fmt, 10)  # type: ignore[arg-type]
    assert high != low
    if fmt != "png":
        assert len(low) < len(high)


def test_webp_at_100_is_lossless() -> None:
    img = _rgba()
    back = Image.open(io.BytesIO(encode(img, "webp", 100)))
    a, b = np.asarray(back), np.asarray(img)
    visible = b[..., 3] > 0  # lossless webp may zero the colour of fully transparent pixels
    assert np.array_equal(a[visible], b[visible])


def test_compression_out_of_range() -> None:
    with pytest.raises(ValueError, match=r"0\.\.100"):
        encode(_rgba(), "png", 101)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P"])
def test_default_png_is_pixel_exact_in_every_mode(mode: str) -> None:
    """The default png (fpng for RGB/RGBA, Pillow for the rest) loses nothing, colour of transparent pixels
    included, and keeps the mode's channels."""
    img = _rgba().convert(mode)
    back = Image.open(io.BytesIO(encode(img, "png")))
    assert back.mode == mode or (mode == "P" and back.mode in ("P", "RGBA", "RGB"))
    assert np.array_equal(np.asarray(back.convert("RGBA")), np.asarray(img.convert("RGBA")))


def test_an_explicit_png_compression_is_a_zlib_level() -> None:
    """output_compression keeps its documented meaning for png (Pillow, zlib level (100 - c) * 9 / 100)."""
    img = Image.fromarray(np.kron(np.arange(64, dtype=np.uint8).reshape(8, 8), np.ones((8, 8), np.uint8)), "L")
    img = img.convert("RGB")
    stored, smallest = encode(img, "png", 100), encode(img, "png", 0)
    assert len(smallest) < len(stored) / 5  # level 9 against level 0 (stored blocks) on a flat image
    for data in (stored, smallest):
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), np.asarray(img))
