"""The embedded model works on a machine with no network: its weights load from the installed package.

The child process has every socket call disabled, no HF_HUB_OFFLINE hint and an empty Hugging Face cache, so the
only way it can make an image is from the files shipped inside the package.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, socket, sys

def _no_network(*args, **kwargs):
    raise OSError("network access attempted in the offline test")

socket.socket.connect = _no_network
socket.socket.connect_ex = _no_network
socket.create_connection = _no_network
socket.getaddrinfo = _no_network

import imageforge
from imageforge.engines.embedded.config import WEIGHTS_DIR
from imageforge.engines.embedded.engine import EmbeddedEngine
from imageforge.params import GenerationParams

engine = EmbeddedEngine(device="cpu")
engine.load()
result = engine.generate([GenerationParams(prompt="a red apple", width=64, height=64, steps=4, seed=1)])[0]
print(json.dumps({
    "package": imageforge.__file__,
    "weights": str(WEIGHTS_DIR),
    "size": list(result.images[0].size),
    "files": sorted(p.relative_to(WEIGHTS_DIR).as_posix() for p in WEIGHTS_DIR.rglob("*") if p.is_file()),
}))
"""


def test_embedded_model_loads_and_generates_without_network(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_", "DIFFUSERS_"))}
    env["HF_HOME"] = str(tmp_path / "empty-hf-home")
    r = subprocess.run(
        [sys.executable, "-c", CHILD], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["size"] == [64, 64]
    package_dir = Path(out["package"]).parent
    assert Path(out["weights"]).is_relative_to(package_dir), "weights must come from the installed package"
    assert {
        "model.json",
        "text_encoder/config.json",
        "text_encoder/model.safetensors",
        "tokenizer/tokenizer.json",
        "unet/diffusion_pytorch_model.safetensors",
    } <= set(out["files"])
    assert not (tmp_path / "empty-hf-home").exists() or not any((tmp_path / "empty-hf-home").rglob("*.safetensors"))
