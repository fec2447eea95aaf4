"""The one encode path: a finished image -> png / jpeg / webp bytes, or an animation's frames -> a gif.

``compression`` is OpenAI's ``output_compression`` (0-100, 100 = least compression): the quality setting for
jpeg and webp (webp at 100 is lossless), and the zlib level for png (100 -> level 0, 0 -> level 9). ``None``
means each format's default below (jpeg/webp 100, OpenAI's default).

PNG at the default compression goes through fpng (a fast single-pass deflate encoder): a 1024² RGB image in
about 4-8 ms against 32-100 ms for Pillow at level 1, with files of about the same size, pixel-exact. Pillow
still writes an explicit ``output_compression`` (each zlib level means what it says) and the modes fpng does not
take. fpng holds the GIL while it encodes, so those few ms are a pause of the event loop; Pillow's encoder
releases it, but its 30-100 ms of CPU were taken from the engine on every image (BENCHMARKS.md, "Server
overhead, issue 20").
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Literal

from PIL import Image

from imageforge.imaging.gif import encode_gif

__all__ = ["DEFAULT_FRAME_MS", "DEFAULT_PNG_LEVEL", "MEDIA_TYPES", "OutputFormat", "encode"]

OutputFormat = Literal["png", "jpeg", "webp", "gif", "svg"]
MEDIA_TYPES: dict[str, str] = {
    "png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp", "gif": "image/gif", "svg": "image/svg+xml",
}  # fmt: skip
DEFAULT_FRAME_MS = 200  # OpenAI's default frame_duration_ms
# Encoder effort, chosen from measurements on 1024x1024 embedded-model output (BENCHMARKS.md, "Encode cost"):
# png level 1 takes a third of level 6's time (65 vs 205 ms opaque) for 30 % more bytes; webp method 2 halves
# method 4's time at a few % more bytes; lossless webp at effort 0 is 10-20x faster than method 4 (71 vs 843 ms).
DEFAULT_PNG_LEVEL = 1
_WEBP_METHOD = 2
_WEBP_LOSSLESS_EFFORT = 0  # Pillow's `quality` in lossless mode is the compression effort
_DEFAULT_LOSSY_QUALITY = 100  # OpenAI's default output_compression


def encode(
    image: Image.Image | Sequence[Image.Image],
    fmt: OutputFormat,
    compression: int | None = None,
    *,
    frame_duration_ms: int = DEFAULT_FRAME_MS,
    svg_detail: str = "medium",
) -> bytes:
    """Encode ``image`` exactly as given: RGBA keeps its alpha (png/webp); jpeg refuses alpha rather than
    silently dropping it (validation rejects ``background=transparent`` with jpeg before this point). ``gif``
    takes the frames of one animation (``imaging/gif.py``) and no compression; ``svg`` traces the image into a
    vector document (``imaging/svg.py``, at ``svg_detail``)."""
    if compression is not None and not 0 <= compression <= 100:
        raise ValueError(f"compression must be within 0..100, got {compression}")
    if fmt == "gif":
        if compression is not None:
            raise ValueError("gif takes no compression")
        return encode_gif([image] if isinstance(image, Image.Image) else list(image), frame_duration_ms)
    if not isinstance(image, Image.Image):
        raise ValueError(f"{fmt} encodes one image, not a sequence of frames")
    if fmt == "svg":
        if compression is not None:
            raise ValueError("svg takes no compression")
        from imageforge.imaging.svg import trace_svg  # scipy and the tracer load only when an svg is asked for

        return trace_svg(image, detail=svg_detail).svg.encode("utf-8")
    buf = io.BytesIO()
    if fmt == "png":
        if compression is None and image.mode in ("RGB", "RGBA"):
            import fpng

            return bytes(fpng.from_pil(image))
        level = DEFAULT_PNG_LEVEL if compression is None else round((100 - compression) * 9 / 100)
        image.save(buf, format="PNG", compress_level=level)
    elif fmt == "jpeg":
        if image.mode not in ("RGB", "L"):
            lowest_alpha = image.getchannel("A").getextrema()[0] if image.mode in ("RGBA", "LA") else 255
            if isinstance(lowest_alpha, (int, float)) and lowest_alpha < 255:
                raise ValueError("jpeg cannot carry transparency; flatten the image first")
            image = image.convert("RGB")
        quality = _DEFAULT_LOSSY_QUALITY if compression is None else compression
        image.save(buf, format="JPEG", quality=quality, optimize=False)
    elif fmt == "webp":
        quality = _DEFAULT_LOSSY_QUALITY if compression is None else compression
        if quality >= 100:
            image.save(buf, format="WEBP", lossless=True, quality=_WEBP_LOSSLESS_EFFORT, method=0)
        else:
            image.save(buf, format="WEBP", quality=quality, method=_WEBP_METHOD)
    else:
        raise ValueError(f"unknown output format {fmt!r}")
    return buf.getvalue()
