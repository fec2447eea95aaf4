"""Images that clients send (uploaded files of ``/v1/images/edits`` and ``/variations``, Responses ``input_image``
data URLs, masks, earlier results): bytes -> a checked, fully decoded RGBA image, or
:class:`~imageforge.errors.InvalidImageError` naming the parameter.

The format is sniffed from the bytes (never trusted from a file name, part ``Content-Type`` or data-URL media
type), only OpenAI's input formats are accepted, and the pixel count is checked from the header *before*
decoding, so a small file that expands into gigapixels (a decompression bomb) is refused without allocating it.
Animated images (APNG, animated WebP and GIF) are refused: every input is one still picture.

Two families share that logic:

- :func:`decode_image` and its wrappers (``code="invalid_image"``): images inside JSON bodies.
- :func:`decode_upload` and :func:`check_mask`: uploaded files, with OpenAI's upload codes
  (``file_too_large``, ``unsupported_file_mimetype``, ``invalid_image_file``) and the facts the edit services need
  (format, whether the file itself has an alpha channel, size after EXIF orientation).

Decoding is CPU work: call these from a worker thread (``asyncio.to_thread``) for anything but tiny images.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import struct
import warnings
from dataclasses import dataclass

from PIL import Image, ImageFilter, ImageOps, UnidentifiedImageError

from imageforge.errors import InvalidImageError

__all__ = [
    "ACCEPTED_FORMATS",
    "MARKUP_ELSEWHERE",
    "MAX_INPUT_PIXELS",
    "UPLOAD_FORMATS",
    "DecodedUpload",
    "check_markup",
    "check_mask",
    "decode_base64_image",
    "decode_data_url",
    "decode_image",
    "decode_upload",
    "repaint_mask",
    "sniff_format",
    "sniff_mimetype",
]

ACCEPTED_FORMATS = ("PNG", "JPEG", "WEBP", "GIF")
UPLOAD_FORMATS = ("PNG", "JPEG", "WEBP")  # OpenAI's edit inputs: png, webp, jpg
MAX_INPUT_PIXELS = 4096 * 4096
MIMETYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}
_DATA_URL = re.compile(r"^data:(?P<media>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w.+-]+=[\w.+-]+)*)(?P<b64>;base64)?,")
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_ORIENTATION = 0x0112  # EXIF tag
# What a hostile file can make Pillow's decoders raise (besides the decompression-bomb checks).
_UNREADABLE = (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, struct.error, IndexError)
_MASK_WITHOUT_ALPHA = (
    "The mask must be a PNG with an alpha channel; fully transparent pixels mark where the image is edited."
)


# -- sniffing ---------------------------------------------------------------------------------------------------


def sniff_format(data: bytes) -> str | None:
    """Pillow's name of the image format the magic bytes announce (PNG, JPEG, WEBP, GIF), else ``None``."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    return None


_OTHER_MAGIC = (
    (b"BM", "image/bmp"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
    (b"\x00\x00\x01\x00", "image/x-icon"),
    (b"8BPS", "image/vnd.adobe.photoshop"),
    (b"%PDF-", "application/pdf"),
    (b"PK\x03\x04", "application/zip"),
    (b"\x1f\x8b", "application/gzip"),
    (b"\xff\x0a", "image/jxl"),
    (b"\x00\x00\x00\x0cJXL ", "image/jxl"),
)
_FTYP_BRANDS = {b"avif": "image/avif", b"avis": "image/avif", b"heic": "image/heic", b"heix": "image/heic",
                b"mif1": "image/heif", b"msf1": "image/heif"}  # fmt: skip


def sniff_mimetype(data: bytes) -> str:
    """The media type the bytes look like, for error messages only (``text/html``, ``application/octet-stream``)."""
    fmt = sniff_format(data)
    if fmt is not None:
        return MIMETYPES[fmt]
    for magic, mime in _OTHER_MAGIC:
        if data.startswith(magic):
            return mime
    if data[4:8] == b"ftyp" and data[8:12] in _FTYP_BRANDS:
        return _FTYP_BRANDS[data[8:12]]
    head = data[:4096]
    text = head.decode("utf-8", "ignore") if _is_text(head) else None
    if text is None:
        return "application/octet-stream"
    lowered = text.lstrip("\ufeff \t\r\n").lower()
    if lowered.startswith(("<!doctype html", "<html", "<head", "<body")) or "<html" in lowered[:1024]:
        return "text/html"
    if lowered.startswith("<svg") or (lowered.startswith("<?xml") and "<svg" in lowered):
        return "image/svg+xml"
    if lowered.startswith("<?xml"):
        return "application/xml"
    if lowered.startswith(("{", "[")):
        return "application/json"
    return "text/plain"


def _is_text(head: bytes) -> bool:
    """UTF-8 (a character cut at the end of ``head`` allowed) without control bytes other than whitespace."""
    if not head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 3:  # not just a multi-byte character cut off by the 4 KiB window
            return False
        text = head[: e.start].decode("utf-8")
    return all(ch.isprintable() or ch in "\t\n\r\f\ufeff" for ch in text)


# -- the shared open/check/load ---------------------------------------------------------------------------------


def _is_animated(image: Image.Image) -> bool:
    if hasattr(image, "is_animated"):  # GIF answers by seeking one frame ahead, not by counting them all
        return bool(image.is_animated)
    return int(getattr(image, "n_frames", 1)) > 1


def _open_checked(
    data: bytes, param: str, formats: tuple[str, ...], max_pixels: int, *, code: str | None, unreadable: str
) -> Image.Image:
    """Open the header, refuse too many pixels or several frames, then decode (still in the source's mode)."""
    too_large = f"at most {max_pixels} pixels are accepted."
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=formats)  # reads the header only
            w, h = image.size
            if w * h > max_pixels:
                raise InvalidImageError(f"The image in '{param}' is {w}x{h}; {too_large}", param=param, code=code)
            if _is_animated(image):
                raise InvalidImageError(f"The image in '{param}' is animated; send a still image.", param=param,
                                        code=code)  # fmt: skip
            image.load()
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        # Pillow's own limit (far above ours) tripped while reading the header: the same refusal.
        raise InvalidImageError(f"The image in '{param}' is too large; {too_large}", param=param, code=code) from None
    except _UNREADABLE:
        raise InvalidImageError(unreadable, param=param, code=code) from None
    return image


# -- images inside JSON bodies ----------------------------------------------------------------------------------


def decode_image(data: bytes, param: str, max_pixels: int = MAX_INPUT_PIXELS) -> Image.Image:
    image = _open_checked(
        data,
        param,
        ACCEPTED_FORMATS,
        max_pixels,
        code=None,  # InvalidImageError's own: invalid_image
        unreadable=f"The image in '{param}' could not be read: send a PNG, JPEG, WebP or GIF image.",
    )
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


# -- uploaded files ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DecodedUpload:
    """A checked upload: RGBA pixels (EXIF orientation applied), the sniffed format, and whether the *file* had
    an alpha channel or a transparent colour (an RGB PNG converted to RGBA has an opaque alpha it never sent)."""

    image: Image.Image
    format: str
    has_alpha: bool
    width: int
    height: int


def _megabytes(n: int) -> str:
    """4194304 -> ``4 MB``, 5452595 -> ``5.2 MB`` (binary megabytes, as OpenAI's "4MB" limits are)."""
    if n < 1 << 20:
        return f"{n / 1024:.1f}".removesuffix(".0") + " KB"
    return f"{n / (1 << 20):.1f}".removesuffix(".0") + " MB"


def _quoted_list(items: list[str]) -> str:
    quoted = [f"'{item}'" for item in items]
    if len(quoted) <= 2:
        return " and ".join(quoted)
    return ", ".join(quoted[:-1]) + ", and " + quoted[-1]


def decode_upload(
    data: bytes,
    param: str,
    *,
    max_bytes: int,
    formats: tuple[str, ...] = UPLOAD_FORMATS,
    max_pixels: int = MAX_INPUT_PIXELS,
    limit_for: str | None = None,
) -> DecodedUpload:
    """Check and decode one uploaded image file (blocking: run it in a thread).

    Refusals, all 400 with ``param=param``:

    - ``file_too_large``: over ``max_bytes`` (checked before anything else; ``limit_for`` names whose limit it is,
      e.g. ``dall-e-2``);
    - ``unsupported_file_mimetype``: the magic bytes are not one of ``formats``; the message names the type the
      bytes look like (``text/html``, ``image/gif``, ``application/octet-stream``), in OpenAI's shape;
    - ``invalid_image_file``: empty, truncated or corrupt, more than ``max_pixels`` pixels (checked from the header,
      before decoding), or animated.
    """
    if len(data) > max_bytes:
        size, limit = _megabytes(len(data)), _megabytes(max_bytes)
        if size == limit:  # just over: the rounded sizes would read "4 MB is over the 4 MB limit"
            size, limit = f"{len(data)} bytes", f"{max_bytes}-byte"
        whose = f" for {limit_for}" if limit_for else ""
        raise InvalidImageError(
            f"Invalid file '{param}': {size} is over the {limit} limit{whose}.", param=param, code="file_too_large"
        )
    if not data:
        raise InvalidImageError(f"Invalid file '{param}': the file is empty.", param=param, code="invalid_image_file")
    fmt = sniff_format(data)
    if fmt is None or fmt not in formats:
        supported = _quoted_list(sorted(MIMETYPES[f] for f in formats))
        raise InvalidImageError(
            f"Invalid file '{param}': unsupported mimetype ('{sniff_mimetype(data)}'). "
            f"Supported file formats are {supported}.",
            param=param,
            code="unsupported_file_mimetype",
        )
    unreadable = f"Invalid file '{param}': the {MIMETYPES[fmt]} image could not be decoded (truncated or corrupt)."
    image = _open_checked(data, param, (fmt,), max_pixels, code="invalid_image_file", unreadable=unreadable)
    has_alpha = image.mode in _ALPHA_MODES or "transparency" in image.info
    try:
        if image.getexif().get(_ORIENTATION, 1) != 1:  # a phone photo: the size the user sees is after rotation
            image = ImageOps.exif_transpose(image)
    except _UNREADABLE:
        raise InvalidImageError(unreadable, param=param, code="invalid_image_file") from None
    rgba = image.convert("RGBA")
    return DecodedUpload(image=rgba, format=fmt, has_alpha=has_alpha, width=rgba.width, height=rgba.height)


def check_mask(mask: DecodedUpload, first: DecodedUpload, param: str = "mask") -> Image.Image:
    """Check an edit mask against the first image; return the engines' repaint mask ("L": 255 = repaint).

    OpenAI's rules: a PNG (``invalid_image_file``) with an alpha channel (``invalid_image_file``) of the first
    image's dimensions (``invalid_value``).
    """
    _png_like_first(mask, first, param, "the mask")
    if not mask.has_alpha:
        raise InvalidImageError(_MASK_WITHOUT_ALPHA, param=param, code="invalid_image_file")
    return repaint_mask(mask.image)


def _png_like_first(upload: DecodedUpload, first: DecodedUpload, param: str, what: str) -> None:
    """A mask's and a markup's common rules: a PNG (``invalid_image_file``) of the first image's dimensions
    (``invalid_value``)."""
    if upload.format != "PNG":
        raise InvalidImageError(
            f"Invalid file '{param}': {what} must be a PNG image, not {MIMETYPES.get(upload.format, upload.format)}.",
            param=param,
            code="invalid_image_file",
        )
    if (upload.width, upload.height) != (first.width, first.height):
        raise InvalidImageError(
            f"Invalid file '{param}': {what} is {upload.width}x{upload.height} but the image is "
            f"{first.width}x{first.height}; they must have the same dimensions.",
            param=param,
            code="invalid_value",
        )


# How markup weights an edit: the strokes (grown a little and feathered) are redrawn fully, the rest of the image at
# this share of the edit (the engines' repaint mask, 0-255), so the edit follows the strokes and leaves the rest
# mostly as it was.
MARKUP_ELSEWHERE = 77  # 30 %
_MARKUP_GROW = 0.015  # of the image's longer side: strokes are thin, what they ask for is around them


def check_markup(markup: DecodedUpload, first: DecodedUpload, param: str = "markup") -> tuple[Image.Image, Image.Image]:
    """OpenAI's markup (a transparent PNG drawn over the first image to guide the edit) -> (the first image with
    the strokes drawn on it, the repaint mask that weights the edit towards them, "L": 255 = repaint).

    OpenAI's rules: a PNG of the first image's dimensions (after EXIF orientation) with transparent pixels.
    """
    _png_like_first(markup, first, param, "the markup")
    alpha = markup.image.getchannel("A")
    lowest, _ = alpha.getextrema()
    if not markup.has_alpha or lowest != 0:
        raise InvalidImageError(
            f"Invalid file '{param}': markup must contain transparent pixels (only the strokes drawn over the "
            "image are opaque).",
            param=param,
            code="invalid_image_file",
        )
    base = first.image.convert("RGBA")
    guided = Image.alpha_composite(base, markup.image)
    if not first.has_alpha:
        guided = guided.convert("RGB").convert("RGBA")  # the first image had no transparency; strokes add none
    strokes = alpha.point(lambda a: 255 if a > 0 else 0)
    grow = max(3, round(max(first.width, first.height) * _MARKUP_GROW)) | 1  # MaxFilter takes odd sizes
    strokes = strokes.filter(ImageFilter.MaxFilter(grow)).filter(ImageFilter.GaussianBlur(grow / 2))
    weight = strokes.point(lambda v: max(MARKUP_ELSEWHERE, v))
    return guided, weight
