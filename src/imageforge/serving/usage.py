"""``usage`` of GPT image responses: text tokens from a real tokenizer, image tokens from a written-down table.

Text tokens are counted with the embedded model's WordPiece tokenizer (``weights/tokenizer/tokenizer.json``, read
with the ``tokenizers`` library): a real tokenizer that ships with the package and works offline. OpenAI counts
with its own BPE, so counts differ from OpenAI's by a few percent; the field names and meaning are OpenAI's.

Output image tokens per image follow OpenAI's published table for the GPT image models (the figures its per-image
prices are computed from)::

    quality   1024x1024   1024x1536   1536x1024
    low           272         408         400
    medium       1056        1584        1568
    high         4160        6240        6208

Other sizes (gpt-image-2 and the ``imageforge`` profile take any ``WxH``) scale the square figure by pixel
area: ``round(square * W * H / 1024²)``.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path

from imageforge.protocol.images import InputTokensDetails, OutputTokensDetails, Usage

__all__ = [
    "IMAGE_TOKENS",
    "TokenCounter",
    "image_tokens",
    "input_image_tokens",
    "usage_for",
]

IMAGE_TOKENS: dict[str, dict[str, int]] = {
    "low": {"1024x1024": 272, "1024x1536": 408, "1536x1024": 400},
    "medium": {"1024x1024": 1056, "1024x1536": 1584, "1536x1024": 1568},
    "high": {"1024x1024": 4160, "1024x1536": 6240, "1536x1024": 6208},
}


# gpt-image-2.5's extra qualities count as high: OpenAI publishes no token table for them.
_COUNTED_AS = {"xhigh": "high", "max": "high"}


def image_tokens(quality: str, width: int, height: int) -> int:
    table = IMAGE_TOKENS[_COUNTED_AS.get(quality, quality)]
    exact = table.get(f"{width}x{height}")
    if exact is not None:
        return exact
    return max(1, round(table["1024x1024"] * width * height / (1024 * 1024)))


class TokenCounter:
    """Counts prompt tokens; the tokenizer file is read on first use (thread-safe), not at start-up."""

    def __init__(self, tokenizer_file: Path) -> None:
        self._file = tokenizer_file
        self._tokenizer: object | None = None
        self._lock = threading.Lock()

    def count(self, text: str) -> int:
        with self._lock:
            if self._tokenizer is None:
                from tokenizers import Tokenizer

                tokenizer = Tokenizer.from_file(str(self._file))
                tokenizer.no_padding()  # the file pads/truncates to the encoder's context; a count needs neither
                tokenizer.no_truncation()
                self._tokenizer = tokenizer
            tok = self._tokenizer
        return len(tok.encode(text, add_special_tokens=False).ids)  # type: ignore[attr-defined]


def usage_for(text_tokens: int, quality: str, width: int, height: int, n: int, input_image_tokens: int = 0) -> Usage:
    out = image_tokens(quality, width, height) * n
    return Usage(
        input_tokens=text_tokens + input_image_tokens,
        input_tokens_details=InputTokensDetails(text_tokens=text_tokens, image_tokens=input_image_tokens),
        output_tokens=out,
        total_tokens=text_tokens + input_image_tokens + out,
        output_tokens_details=OutputTokensDetails(image_tokens=out, text_tokens=0),
    )


def input_image_tokens(width: int, height: int, fidelity: str = "low") -> int:
    """What an input image of an edit counts as: OpenAI's documented rule for image inputs (scaled to fit in
    2048x2048, then its short side to 768; 170 tokens per 512 px tile plus 85), and at ``input_fidelity`` high
    the extra tokens OpenAI charges for it (4096 for a square image, 6144 for a non-square one)."""
    scale = min(1.0, 2048 / max(width, height))
    w, h = width * scale, height * scale
    scale = min(1.0, 768 / min(w, h))
    w, h = w * scale, h * scale
    tokens = 85 + 170 * math.ceil(w / 512) * math.ceil(h / 512)
    if fidelity == "high":
        tokens += 4096 if width == height else 6144
    return tokens
