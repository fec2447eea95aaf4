"""output_format "svg" through the official SDK: a real vector document of the drawn image, with svg_usage."""

from __future__ import annotations

import base64
import io
import xml.etree.ElementTree as ET

import httpx
import numpy as np
import resvg_py
from PIL import Image

from tests.api.server import Server

SVG_NS = "{http://www.w3.org/2000/svg}"


def test_an_svg_generation_is_a_vector_image_of_the_asked_size(server: Server) -> None:
    r = server.client().images.generate(model="gpt-image-2.5-sunburst", prompt="a green leaf", quality="low",
                                        size="1536x1024", output_format="svg",
                                        svg={"model": "gpt-5", "reasoning": {"effort": "high"}})  # fmt: skip
    assert r.output_format == "svg" and r.size == "1536x1024"
    text = base64.b64decode(str(r.data[0].b64_json)).decode("utf-8")
    root = ET.fromstring(text)
    assert root.tag == SVG_NS + "svg"
    assert (root.get("width"), root.get("height")) == ("1536", "1024")
    assert len(root.findall(f".//{SVG_NS}path")) > 10, "traced shapes, not an embedded bitmap"
    assert root.find(f".//{SVG_NS}image") is None
    png = resvg_py.svg_to_bytes(svg_string=text, width=1536, height=1024)
    rendered = np.asarray(Image.open(io.BytesIO(bytes(png))).convert("RGB"))
    assert rendered.shape == (1024, 1536, 3) and len(np.unique(rendered.reshape(-1, 3), axis=0)) > 4
    assert getattr(r, "svg_usage", None) is not None, "the SDK's ImagesResponse.svg_usage"


def test_svg_usage_says_truthfully_what_made_it(server: Server) -> None:
    body = {"model": "gpt-image-2", "prompt": "a sun", "quality": "low", "output_format": "svg"}
    r = httpx.post(f"{server.v1}/images/generations", json=body, timeout=300)
    assert r.status_code == 200, r.text
    out = r.json()
    assert ET.fromstring(base64.b64decode(out["data"][0]["b64_json"])).tag == SVG_NS + "svg"
    assert out["svg_usage"] == {"input_tokens": 0, "output_tokens": 0, "reasoning_tokens": 0, "total_tokens": 0,
                                "model": "vtracer"}, "no language model wrote it: the tracer did"  # fmt: skip


def test_an_svg_edit_sends_svg_options_as_multipart_fields(server: Server) -> None:
    """The SDK sends ``svg`` as ``svg[model]`` and ``svg[reasoning][effort]`` form fields."""
    base = server.client().images.generate(model="gpt-image-1", prompt="a blue star", quality="low")
    png = base64.b64decode(str(base.data[0].b64_json))
    r = server.client().images.edit(model="gpt-image-2.5-flare", image=("star.png", png, "image/png"),
                                    prompt="a blue star", quality="low", output_format="svg",
                                    svg={"model": "gpt-5", "reasoning": {"effort": "low"}})  # fmt: skip
    root = ET.fromstring(base64.b64decode(str(r.data[0].b64_json)))
    assert root.tag == SVG_NS + "svg" and root.get("width") == "1024"
