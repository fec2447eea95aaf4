"""Usage accounting: the written-down image-token table and a real tokenizer's count."""

from __future__ import annotations

import pytest

from imageforge.engines.embedded.config import WEIGHTS_DIR
from imageforge.serving.usage import IMAGE_TOKENS, TokenCounter, image_tokens, usage_for


@pytest.mark.parametrize("quality", ["low", "medium", "high"])
def test_table_sizes_are_exact_and_others_scale_by_area(quality: str) -> None:
    for size, tokens in IMAGE_TOKENS[quality].items():
        w, h = (int(v) for v in size.split("x"))
        assert image_tokens(quality, w, h) == tokens
    square = IMAGE_TOKENS[quality]["1024x1024"]
    assert image_tokens(quality, 2048, 2048) == 4 * square
    assert image_tokens(quality, 512, 512) == round(square / 4)


def test_usage_fields_add_up() -> None:
    u = usage_for(12, "medium", 1024, 1536, n=3)
    assert u.input_tokens == 12 and u.input_tokens_details.text_tokens == 12
    assert u.output_tokens == 3 * 1584 and u.total_tokens == 12 + 3 * 1584
    assert u.output_tokens_details is not None and u.output_tokens_details.image_tokens == u.output_tokens


def test_token_counter_counts_words_not_padding() -> None:
    counter = TokenCounter(WEIGHTS_DIR / "tokenizer" / "tokenizer.json")
    assert counter.count("a red heart") == 3
    assert counter.count("a red heart " * 100) == 300, "no truncation at the encoder's context length"
    assert counter.count("") == 0
