"""Decoding what the server returned, with real codecs."""

from __future__ import annotations

import base64
import io

from PIL import Image


def decode_b64(b64: str | None) -> tuple[Image.Image, bytes]:
    assert b64, "no b64_json in the response"
    data = base64.b64decode(b64)
    img = Image.open(io.BytesIO(data))
    img.load()
    return img, data


def min_alpha(img: Image.Image) -> int:
    if img.mode not in ("RGBA", "LA"):
        return 255
    lo, _ = img.getchannel("A").getextrema()
    return int(lo)


def png(img: Image.Image) -> bytes:
    """``img`` as PNG bytes (an upload)."""
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
