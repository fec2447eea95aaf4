"""The embedded model's text encoder: all-MiniLM-L6-v2, stored in the package as our own int8 safetensors.

``training/convert_text_encoder.py`` writes ``weights/text_encoder/`` (config, fp16 weights) and
``weights/tokenizer/tokenizer.json``; nothing here touches a network or a model hub.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["TextEmbedding", "TextEncoder", "dequantize"]


@dataclass(frozen=True)
class TextEmbedding:
    tokens: torch.Tensor  # (B, T, D) last hidden states, cross-attention context
    mask: torch.Tensor  # (B, T) 1 for real tokens, 0 for padding
    pooled: torch.Tensor  # (B, D) mean-pooled, L2-normalised sentence vector (as sentence-transformers)


def dequantize(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """int8 rows times their ``<name>.scale`` -> fp32; fp16/fp32 tensors -> fp32 (older fp16-only files load too)."""
    import torch

    out = {}
    for key, value in state.items():
        if key.endswith(".scale"):
            continue
        if value.dtype == torch.int8:
            out[key] = value.float() * state[f"{key}.scale"].float()
        else:
            out[key] = value.float()
    return out


class TextEncoder:
    """Tokenise and encode prompts; ``max_tokens`` includes [CLS] and [SEP] (longer prompts are truncated)."""

    def __init__(self, weights_dir: Path, max_tokens: int, device: str = "cpu") -> None:
        import torch
        from safetensors.torch import load_file
        from tokenizers import Tokenizer
        from transformers import BertConfig, BertModel

        self.max_tokens = max_tokens
        self.device = device
        self._tokenizer = Tokenizer.from_file(str(weights_dir / "tokenizer" / "tokenizer.json"))
        self._tokenizer.enable_truncation(max_length=max_tokens)
        self._tokenizer.enable_padding(length=max_tokens, pad_id=0, pad_token="[PAD]")
        config = BertConfig.from_json_file(str(weights_dir / "text_encoder" / "config.json"))
        model = BertModel(config, add_pooling_layer=False)
        state = load_file(str(weights_dir / "text_encoder" / "model.safetensors"))
        # Stored small (int8 matrices with per-row scales, fp16 vectors: convert_text_encoder.py); computed in fp32
        # (bf16/fp16/int8 matmuls are slower than fp32 on CPUs without AMX).
        model.load_state_dict(dequantize(state), strict=True)
        self._model = model.eval().to(device)
        self._torch = torch

    def truncate(self, text: str) -> str:
        """The leading part of ``text`` that fits in ``max_tokens`` (what the model is conditioned on)."""
        enc = self._tokenizer.encode(text)
        if not enc.overflowing:
            return text
        spans = [end for (start, end), tid in zip(enc.offsets, enc.ids, strict=True) if end > start and tid != 0]
        return text[: max(spans)] if spans else ""

    def encode(self, prompts: list[str]) -> TextEmbedding:
        torch = self._torch
        batch = self._tokenizer.encode_batch(prompts)
        ids = torch.tensor([e.ids for e in batch], dtype=torch.long, device=self.device)  # (B, T)
        mask = torch.tensor([e.attention_mask for e in batch], dtype=torch.long, device=self.device)  # (B, T)
        with torch.inference_mode():
            hidden = self._model(input_ids=ids, attention_mask=mask).last_hidden_state  # (B, T, D)
        m = mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
        pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)  # (B, D)
        pooled = torch.nn.functional.normalize(pooled, dim=-1)
        return TextEmbedding(tokens=hidden, mask=mask, pooled=pooled)
