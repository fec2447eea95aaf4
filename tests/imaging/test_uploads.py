"""Checking uploaded image bytes: each refusal with its param and OpenAI's code, bombs refused from the header,
alpha known from the file itself, and the mask rules of /v1/images/edits."""

from __future__ import annotations

import io
import struct
import time
import zlib
from collections.abc import Callable

import pytest
from PIL import Image

from imageforge.errors import InvalidImageError, InvalidRequestError
from imageforge.imaging.decode import (
    DecodedUpload,
    check_mask,
    decode_image,
    decode_upload,
    sniff_format,
    sniff_mimetype,
)
from imageforge.imaging.uploads import ImageForm, UploadedFile

MB = 1 << 20
LIMIT = 50 * MB


def _bytes(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _png(mode: str = "RGB", size: tuple[int, int] = (8, 6), **kw: object) -> bytes:
    return _bytes(Image.new(mode, size), "PNG", **kw)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _huge_header_png(width: int, height: int) -> bytes:
    """A 1x1 PNG whose IHDR claims width x height (valid CRC): tiny, and a bomb if ever decoded."""
    data = bytearray(_png("L", (1, 1)))
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[8:33] = _chunk(b"IHDR", ihdr)
    return bytes(data)


def _zero_bomb_png(side: int) -> bytes:
    """A real, fully valid greyscale PNG of side x side black pixels, compressed row by row (a few KB)."""
    z = zlib.compressobj(9)
    row = b"\0" * (side + 1)  # filter byte + pixels
    idat = b"".join(z.compress(row) for _ in range(side)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def _refused(call: Callable[[], object], param: str, code: str) -> InvalidImageError:
    with pytest.raises(InvalidImageError) as e:
        call()
    assert (e.value.param, e.value.code, e.value.status) == (param, code, 400), e.value
    return e.value


# -- accepted ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_accepted_formats_decode_to_rgba(fmt: str) -> None:
    got = decode_upload(_bytes(Image.new("RGB", (20, 10), (200, 10, 10)), fmt), "image", max_bytes=LIMIT)
    assert isinstance(got, DecodedUpload)
    assert (got.format, got.width, got.height, got.image.mode, got.image.size) == (fmt, 20, 10, "RGBA", (20, 10))


def test_gif_only_when_asked_for() -> None:
    gif = _bytes(Image.new("RGB", (4, 4)), "GIF")
    _refused(lambda: decode_upload(gif, "image", max_bytes=LIMIT), "image", "unsupported_file_mimetype")
    got = decode_upload(gif, "image", max_bytes=LIMIT, formats=("PNG", "GIF"))
    assert got.format == "GIF"


def test_exif_orientation_is_applied() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    jpeg = _bytes(Image.new("RGB", (20, 10)), "JPEG", exif=exif.tobytes())
    got = decode_upload(jpeg, "image", max_bytes=LIMIT)
    assert (got.width, got.height) == (10, 20) and got.image.size == (10, 20)


@pytest.mark.parametrize(
    ("data", "has_alpha"),
    [
        pytest.param(_png("RGB"), False, id="rgb-png"),
        pytest.param(_png("RGBA"), True, id="rgba-png"),
        pytest.param(_png("LA"), True, id="la-png"),
        pytest.param(_png("L"), False, id="l-png"),
        pytest.param(_png("P"), False, id="p-png"),
        pytest.param(_png("P", transparency=0), True, id="p-trns-png"),  # palette + tRNS
        pytest.param(_png("RGB", transparency=(0, 0, 0)), True, id="rgb-trns-png"),  # one transparent colour
        pytest.param(_bytes(Image.new("RGB", (8, 8)), "JPEG"), False, id="jpeg"),
        pytest.param(_bytes(Image.new("RGBA", (8, 8), (1, 2, 3, 100)), "WEBP"), True, id="rgba-webp"),
        pytest.param(_bytes(Image.new("RGB", (8, 8)), "WEBP"), False, id="rgb-webp"),
    ],
)
def test_has_alpha_is_the_files_own(data: bytes, has_alpha: bool) -> None:
    got = decode_upload(data, "image[1]", max_bytes=LIMIT)
    assert got.has_alpha is has_alpha
    assert got.image.mode == "RGBA"


def test_transparent_palette_entries_stay_transparent() -> None:
    got = decode_upload(_png("P", transparency=0), "image", max_bytes=LIMIT)
    assert got.image.getpixel((0, 0)) == (0, 0, 0, 0)


# -- refusals ---------------------------------------------------------------------------------------------------


def test_too_large_is_checked_before_anything_else() -> None:
    data = b"<html>" + b"x" * int(5.2 * MB)  # not an image either: the size is what is reported
    e = _refused(
        lambda: decode_upload(data, "image", max_bytes=4 * MB, limit_for="dall-e-2"), "image", "file_too_large"
    )
    assert e.message == "Invalid file 'image': 5.2 MB is over the 4 MB limit for dall-e-2."
    e = _refused(lambda: decode_upload(b"x" * (4 * MB + 1), "mask", max_bytes=4 * MB), "mask", "file_too_large")
    assert e.message == "Invalid file 'mask': 4194305 bytes is over the 4194304-byte limit."
    assert decode_upload(_png(), "image", max_bytes=len(_png())).width == 8  # at the limit: fine


def test_unsupported_mimetype_in_openais_shape() -> None:
    e = _refused(
        lambda: decode_upload(b"<!DOCTYPE html><html><body>hi</body></html>", "image", max_bytes=LIMIT),
        "image",
        "unsupported_file_mimetype",
    )
    assert e.message == (
        "Invalid file 'image': unsupported mimetype ('text/html'). "
        "Supported file formats are 'image/jpeg', 'image/png', and 'image/webp'."
    )


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (b"Example data", "text/plain"),  # what the OpenAI SDK's own tests upload
        (b"<html><p>x</p></html>", "text/html"),
        (b'<svg xmlns="http://www.w3.org/2000/svg"/>', "image/svg+xml"),
        (b'{"image": "x"}', "application/json"),
        (_bytes(Image.new("RGB", (4, 4)), "GIF"), "image/gif"),
        (_bytes(Image.new("RGB", (4, 4)), "BMP"), "image/bmp"),
        (_bytes(Image.new("RGB", (4, 4)), "TIFF"), "image/tiff"),
        (b"%PDF-1.7 ...", "application/pdf"),
        (bytes(range(256)), "application/octet-stream"),
        (b"\x89PNX\r\n", "application/octet-stream"),
    ],
)
def test_unsupported_types_are_named_from_the_bytes(data: bytes, mime: str) -> None:
    assert sniff_mimetype(data) == mime
    e = _refused(lambda: decode_upload(data, "image[2]", max_bytes=LIMIT), "image[2]", "unsupported_file_mimetype")
    assert f"('{mime}')" in e.message


def test_formats_narrow_what_is_accepted() -> None:
    jpeg = _bytes(Image.new("RGB", (8, 8)), "JPEG")
    e = _refused(lambda: decode_upload(jpeg, "image", max_bytes=LIMIT, formats=("PNG",)), "image",
                 "unsupported_file_mimetype")  # fmt: skip
    assert e.message.endswith("('image/jpeg'). Supported file formats are 'image/png'.")


def test_sniff_format() -> None:
    assert sniff_format(_png()) == "PNG"
    assert sniff_format(b"\xff\xd8\xff\xe0") == "JPEG"
    assert sniff_format(b"RIFF\0\0\0\0WEBPVP8 ") == "WEBP"
    assert sniff_format(b"RIFF\0\0\0\0WAVEfmt ") is None
    assert sniff_format(b"GIF89a") == "GIF"
    assert sniff_format(b"") is None


@pytest.mark.parametrize(
    "data",
    [
        b"",
        _png()[:40],  # right magic, cut off
        _png()[:8],
        _bytes(Image.new("RGB", (64, 64)), "JPEG")[:200],
        b"\xff\xd8\xff" + b"\0" * 100,
        b"RIFF\x10\0\0\0WEBPgarbage!",
        _png()[:33] + _chunk(b"IDAT", b"not zlib") + _chunk(b"IEND", b""),
    ],
    ids=["empty", "png-40", "png-magic-only", "jpeg-200", "jpeg-zeros", "webp-garbage", "png-bad-idat"],
)
def test_undecodable_images(data: bytes) -> None:
    _refused(lambda: decode_upload(data, "image", max_bytes=LIMIT), "image", "invalid_image_file")


def test_bad_crc_is_refused() -> None:
    data = bytearray(_png())
    data[30] ^= 0xFF  # inside the IHDR CRC
    _refused(lambda: decode_upload(bytes(data), "image", max_bytes=LIMIT), "image", "invalid_image_file")


def test_a_30000x30000_png_is_refused_from_its_header() -> None:
    bomb = _huge_header_png(30000, 30000)
    assert len(bomb) < 100
    started = time.perf_counter()
    e = _refused(lambda: decode_upload(bomb, "image", max_bytes=LIMIT), "image", "invalid_image_file")
    assert time.perf_counter() - started < 0.5
    assert "pixels" in e.message
    # decode_image (JSON bodies) shares the check
    with pytest.raises(InvalidImageError, match="at most") as old:
        decode_image(bomb, "input[0]")
    assert old.value.code == "invalid_image"


def test_a_real_compressed_bomb_is_refused_before_decoding() -> None:
    bomb = _zero_bomb_png(5000)  # 25 megapixels (over 4096x4096, under Pillow's own warning) in a few KB
    assert len(bomb) < 100_000
    started = time.perf_counter()
    e = _refused(lambda: decode_upload(bomb, "image[3]", max_bytes=LIMIT), "image[3]", "invalid_image_file")
    assert time.perf_counter() - started < 0.5
    assert "5000x5000" in e.message
    assert decode_upload(_zero_bomb_png(64), "image", max_bytes=LIMIT).width == 64  # the builder makes real PNGs


def test_max_pixels_is_the_callers() -> None:
    data = _png("RGB", (300, 300))
    _refused(lambda: decode_upload(data, "image", max_bytes=LIMIT, max_pixels=256 * 256), "image", "invalid_image_file")
    assert decode_upload(data, "image", max_bytes=LIMIT, max_pixels=300 * 300).width == 300


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "GIF"])
def test_animated_images_are_refused(fmt: str) -> None:
    frames = [Image.new("RGBA", (8, 8), (80 * i, 0, 0, 255)) for i in range(3)]
    data = _bytes(frames[0], fmt, save_all=True, append_images=frames[1:])
    e = _refused(lambda: decode_upload(data, "image", max_bytes=LIMIT, formats=("PNG", "WEBP", "GIF")), "image",
                 "invalid_image_file")  # fmt: skip
    assert "animated" in e.message


# -- masks ------------------------------------------------------------------------------------------------------


def _decoded(data: bytes, param: str = "image") -> DecodedUpload:
    return decode_upload(data, param, max_bytes=LIMIT)


def test_mask_becomes_the_engines_repaint_mask() -> None:
    mask_img = Image.new("RGBA", (8, 6), (0, 0, 0, 255))
    mask_img.putpixel((1, 0), (0, 0, 0, 0))  # transparent: edit here
    repaint = check_mask(_decoded(_bytes(mask_img, "PNG"), "mask"), _decoded(_png("RGB", (8, 6))))
    assert repaint.mode == "L" and repaint.size == (8, 6)
    assert [repaint.getpixel((x, 0)) for x in range(3)] == [0, 255, 0]


def test_mask_with_a_transparent_palette_entry_is_accepted() -> None:
    repaint = check_mask(_decoded(_png("P", (8, 6), transparency=0), "mask"), _decoded(_png("RGB", (8, 6))))
    assert repaint.getpixel((0, 0)) == 255


def test_mask_of_another_size() -> None:
    mask = _decoded(_png("RGBA", (8, 8)), "mask")
    with pytest.raises(InvalidRequestError) as e:
        check_mask(mask, _decoded(_png("RGB", (8, 6))))
    assert (e.value.param, e.value.code) == ("mask", "invalid_value")
    assert "8x8" in e.value.message and "8x6" in e.value.message


def test_mask_without_alpha() -> None:
    e = _refused(lambda: check_mask(_decoded(_png("RGB"), "mask"), _decoded(_png("RGB"))), "mask", "invalid_image_file")
    assert e.message == (
        "The mask must be a PNG with an alpha channel; fully transparent pixels mark where the image is edited."
    )


def test_mask_must_be_png() -> None:
    webp = _bytes(Image.new("RGBA", (8, 6), (0, 0, 0, 0)), "WEBP")
    first = _decoded(_png("RGB"))
    e = _refused(lambda: check_mask(_decoded(webp, "mask"), first, param="mask"), "mask", "invalid_image_file")
    assert "PNG" in e.message


# -- the form's dataclasses -------------------------------------------------------------------------------------


def test_form_dataclasses_are_frozen_and_repr_is_short() -> None:
    f = UploadedFile(data=b"\0" * 1000, param="image")
    assert repr(f) == "UploadedFile(param='image', 1000 bytes)"
    form = ImageForm(images=(f,), mask=None, markup=None, fields={"prompt": "x"})
    with pytest.raises(AttributeError):
        form.mask = f  # type: ignore[misc]
