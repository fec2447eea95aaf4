"""The official openai-node SDK (7.59, pinned in ``tests/api/node/package-lock.json``) against a real server:
``images.edit`` with a file, a list, a mask and a stream of partial images, ``images.createVariation``, and the
newest calls (``newest.mjs``: the gpt-image-2.5/2.6 ids, ``xhigh``, gif, svg, markup).

The SDK is installed from the npm registry on first run (``npm ci``); without Node.js on the machine the test is
skipped with that reason.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.api.images import decode_b64
from tests.api.server import Server
from tests.docs import code_block

NODE_DIR = Path(__file__).parent / "node"


@pytest.fixture(scope="module")
def node_sdk() -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("Node.js and npm are not installed: the openai-node checks need them")
    if not (NODE_DIR / "node_modules" / "openai").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True, timeout=600,
                       capture_output=True)  # fmt: skip
    return NODE_DIR / "edits.mjs"


def test_openai_node_edits_and_variations(server: Server, node_sdk: Path, tmp_path: Path) -> None:
    made = server.client().images.generate(model="gpt-image-1", prompt="a red heart", quality="low",
                                           background="transparent")  # fmt: skip
    heart = tmp_path / "heart.png"
    heart.write_bytes(base64.b64decode(str(made.data[0].b64_json)))
    mask = Image.new("RGBA", (1024, 1024), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, 512, 1024))  # redraw the left half
    buf = io.BytesIO()
    mask.save(buf, format="PNG")
    (tmp_path / "mask.png").write_bytes(buf.getvalue())
    done = subprocess.run(["node", str(node_sdk), server.v1, str(heart), str(tmp_path / "mask.png")],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout)
    for key, fmt in (("one", "PNG"), ("list", "WEBP"), ("masked", "PNG")):
        img, _ = decode_b64(out[key]["b64"][0])
        assert out[key]["n"] == 1 and img.format == fmt and img.size == (1024, 1024), key
        assert out[key]["usage"]["input_tokens_details"]["image_tokens"] > 0, key
    source = np.asarray(Image.open(heart).convert("RGBA"), dtype=np.float64)
    masked = np.asarray(decode_b64(out["masked"]["b64"][0])[0].convert("RGBA"), dtype=np.float64)
    assert np.abs(masked[:, 512:] - source[:, 512:]).mean() < 2.0  # kept where the mask is opaque
    kinds = [e["type"] for e in out["events"]]
    assert kinds[-1] == "image_edit.completed" and kinds.count("image_edit.partial_image") >= 1
    assert out["events"][-1]["usage"]["input_tokens_details"]["image_tokens"] > 0
    assert [decode_b64(b)[0].size for b in out["variations"]["b64"]] == [(256, 256)] * 2


def test_the_readme_node_example(server: Server, node_sdk: Path, tmp_path: Path) -> None:
    """The README's Node example as written (only the port differs), run where the pinned SDK is installed."""
    code = code_block("javascript", 'from "openai"').replace("http://127.0.0.1:8000/v1", server.v1)
    script = NODE_DIR / f"readme-{tmp_path.name}.mjs"  # beside node_modules, so `import "openai"` finds the SDK
    script.write_text(code)
    try:
        done = subprocess.run(["node", str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    finally:
        script.unlink()
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split("\n")[:2] == ["preview 0", "preview 1"], done.stdout
    with Image.open(tmp_path / "star.png") as img:
        assert img.size == (1024, 1024) and img.format == "PNG"


def test_openai_node_newest_calls(server: Server, node_sdk: Path, tmp_path: Path) -> None:
    """openai-node 7.59: the 2.5/2.6 ids (a dated snapshot too), quality xhigh, complexity, gif (two in one call),
    svg and a markup edit."""
    import xml.etree.ElementTree as ET

    made = server.client().images.generate(model="gpt-image-1", prompt="a green hill", quality="low")
    picture = tmp_path / "picture.png"
    picture.write_bytes(base64.b64decode(str(made.data[0].b64_json)))
    markup = Image.new("RGBA", (1024, 1024), (0, 0, 0, 0))
    markup.paste((230, 20, 20, 255), (100, 100, 300, 600))
    buf = io.BytesIO()
    markup.save(buf, format="PNG")
    (tmp_path / "markup.png").write_bytes(buf.getvalue())
    drafts = server.metric("imageforge_plan_drafts_total", model="gpt-image-2.6-sunburst")
    done = subprocess.run(["node", str(node_sdk.parent / "newest.mjs"), server.v1, str(picture),
                           str(tmp_path / "markup.png")], capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout)
    assert out["xhigh"]["quality"] == "xhigh" and decode_b64(out["xhigh"]["b64"][0])[0].size == (1024, 1024)
    assert decode_b64(out["complexity"]["b64"][0])[0].size == (1024, 1024)
    assert server.metric("imageforge_plan_drafts_total", model="gpt-image-2.6-sunburst") - drafts == 8, "planned"
    assert out["gif"]["n"] == 2
    for b64 in out["gif"]["b64"]:
        gif, _ = decode_b64(b64)
        assert (gif.format, gif.n_frames, gif.info["duration"], out["gif"]["output_format"]) == ("GIF", 3, 150, "gif")
    root = ET.fromstring(base64.b64decode(out["svg"]["b64"][0]))
    assert root.tag == "{http://www.w3.org/2000/svg}svg" and out["svg"]["svg_usage"]["model"] == "vtracer"
    edited, _ = decode_b64(out["markup"]["b64"][0])
    assert edited.size == (1024, 1024)
