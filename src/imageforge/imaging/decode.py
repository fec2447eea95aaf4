"""Images that clients send (Responses ``input_image`` data URLs, masks, earlier results): bytes -> a checked,
fully decoded RGBA image, or :class:`~imageforge.errors.InvalidImageError` naming the parameter.

The format is sniffed from the bytes (never trusted from a header), only PNG, JPEG, WebP and still GIF are
accepted (OpenAI's input formats), and the pixel count is checked from the header *before* decoding, so a small
file that expands into gigapixels (a decompression bomb) is refused without allocating it.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import warnings

from PIL import Image, UnidentifiedImageError

from imageforge.errors import InvalidImageError

__all__ = [
    "ACCEPTED_FORMATS",
    "MAX_INPUT_PIXELS",
    "decode_base64_image",
    "decode_data_url",
    "decode_image",
    "repaint_mask",
]

ACCEPTED_FORMATS = ("PNG", "JPEG", "WEBP", "GIF")
MAX_INPUT_PIXELS = 4096 * 4096
_DATA_URL = re.compile(r"^data:(?P<media>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w.+-]+=[\w.+-]+)*)(?P<b64>;base64)?,")


def decode_image(data: bytes, param: str, max_pixels: int = MAX_INPUT_PIXELS) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
            w, h = image.size
            if w * h > max_pixels:
                raise InvalidImageError(
                    f"The image in '{param}' is {w}x{h}; at most {max_pixels} pixels are accepted.", param=param
                )
            if getattr(image, "n_frames", 1) > 1:
                raise InvalidImageError(f"The image in '{param}' is animated; send a still image.", param=param)
            image.load()
    except (
        UnidentifiedImageError,
        OSError,
        ValueError,
        SyntaxError,
        Image.DecompressionBombWarning,
        Image.DecompressionBombError,
    ):
        raise InvalidImageError(
            f"The image in '{param}' could not be read: send a PNG, JPEG, WebP or GIF image.", param=param
        ) from None
    return image.convert("RGBA")


def decode_base64_image(text: str, param: str, max_pixels: int = MAX_INPUT_PIXELS) -> Image.Image:
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidImageError(f"'{param}' is not valid base64.", param=param) from None
    return decode_image(data, param, max_pixels)


def decode_data_url(url: str, param: str, max_pixels: int = MAX_INPUT_PIXELS) -> Image.Image:
    """``data:image/png;base64,...`` -> image (the media type is not trusted: the bytes are sniffed)."""
    m = _DATA_URL.match(url)
    if m is None or not m.group("b64"):
        raise InvalidImageError(
            f"'{param}' must be a base64 data URL such as data:image/png;base64,iVBOR...", param=param
        )
    return decode_base64_image(url[m.end() :], param, max_pixels)


def repaint_mask(mask: Image.Image) -> Image.Image:
    """OpenAI's mask convention (fully transparent pixels are repainted) -> the engines' ("L": 255 = repaint)."""
    alpha = mask.convert("RGBA").getchannel("A")
    return alpha.point(lambda a: 255 - a)
