from __future__ import annotations

import dataclasses
import io
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable

import numpy as np
import pytest
import resvg_py
from PIL import Image, ImageDraw
from scipy import ndimage

from imageforge.errors import ConfigurationError
from imageforge.imaging.svg import DETAILS, TracedSvg, trace_svg

SVG_NS = "{http://www.w3.org/2000/svg}"

# Mean absolute RGB error (0..255) of the traced SVG, rasterised back at the input's size, against the input.
# Measured at 256x256 (low / medium / high): circles 0.53 / 0.55 / 0.54, rectangles 0.00 / 0.00 / 0.00,
# gradient 10.7 / 9.6 / 8.6 (a smooth gradient becomes 16 / 32 / 64 bands), flat art on a sky gradient
# 1.33 / 1.31 / 1.32. The bounds leave ~1.5x room (the gradient's less: its error is the banding itself).
MAE_BOUNDS: dict[str, dict[str, float]] = {
    "circles": {"low": 1.0, "medium": 1.0, "high": 1.0},
    "rectangles": {"low": 0.25, "medium": 0.25, "high": 0.25},
    "gradient": {"low": 13.0, "medium": 12.0, "high": 11.0},
    "scene": {"low": 2.0, "medium": 2.0, "high": 2.0},
}


def _circles(size: int = 256) -> Image.Image:
    img = Image.new("RGB", (size, size), (245, 240, 225))
    draw = ImageDraw.Draw(img)
    s = size / 256
    draw.ellipse((20 * s, 20 * s, 130 * s, 130 * s), fill=(200, 30, 40))
    draw.ellipse((120 * s, 90 * s, 240 * s, 210 * s), fill=(30, 90, 200))
    draw.ellipse((60 * s, 150 * s, 120 * s, 210 * s), fill=(250, 200, 20))
    return img


def _rectangles(size: int = 256) -> Image.Image:
    img = Image.new("RGB", (size, size), (20, 20, 30))
    draw = ImageDraw.Draw(img)
    s = size // 8
    draw.rectangle((s, s, 4 * s - 1, 3 * s - 1), fill=(240, 240, 240))
    draw.rectangle((5 * s, s, 7 * s - 1, 6 * s - 1), fill=(20, 160, 90))
    draw.rectangle((2 * s, 4 * s, 4 * s - 1, 7 * s - 1), fill=(230, 120, 20))
    return img


def _gradient(size: int = 256) -> Image.Image:
    x = np.linspace(0, 255, size)[None, :]
    y = np.linspace(0, 255, size)[:, None]
    arr = np.stack([np.broadcast_to(x, (size, size)), np.broadcast_to(y, (size, size)), np.full((size, size), 128.0)])
    return Image.fromarray(np.moveaxis(arr, 0, -1).astype(np.uint8))


def _scene(size: int = 256) -> Image.Image:
    """Flat art over a vertical sky gradient: the typical "illustration" input."""
    sky = np.linspace(0, 1, size)[:, None, None] * np.array([60.0, 40.0, -80.0]) + np.array([120.0, 170.0, 240.0])
    img = Image.fromarray(np.broadcast_to(sky, (size, size, 3)).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    s = size / 256
    draw.ellipse((170 * s, 20 * s, 230 * s, 80 * s), fill=(255, 220, 60))
    draw.polygon([(0, 200 * s), (90 * s, 90 * s), (180 * s, 200 * s)], fill=(90, 110, 130))
    draw.rectangle((0, 200 * s, size, size), fill=(60, 150, 60))
    return img


IMAGES: dict[str, Callable[[int], Image.Image]] = {
    "circles": _circles,
    "rectangles": _rectangles,
    "gradient": _gradient,
    "scene": _scene,
}


def _cutout(size: int = 256) -> Image.Image:
    """RGBA: a ring and a square on a transparent background, and a transparent hole inside an opaque area.

    The hole is the case vtracer's own alpha handling misses (it keys transparency out only when enough of the
    pixels on a few sampled rows are transparent)."""
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    s = size / 256
    draw.ellipse((20 * s, 20 * s, 200 * s, 200 * s), fill=(230, 120, 20, 255))
    draw.ellipse((80 * s, 80 * s, 140 * s, 140 * s), fill=(0, 0, 0, 0))
    draw.rectangle((150 * s, 150 * s, 240 * s, 240 * s), fill=(20, 60, 200, 255))
    return img


def _holed(size: int = 256) -> Image.Image:
    """RGBA: an opaque picture with one small transparent window (under the keying heuristic's threshold)."""
    img = _scene(size).convert("RGBA")
    img.paste((0, 0, 0, 0), (size // 2 - size // 16, size // 2 - size // 16, size // 2 + size // 16, size // 2))
    return img


def _render(svg: str, width: int, height: int) -> Image.Image:
    png = resvg_py.svg_to_bytes(svg_string=svg, width=width, height=height)
    return Image.open(io.BytesIO(bytes(png))).convert("RGBA")


def _rgb_mae(traced: TracedSvg, source: Image.Image) -> float:
    back = _render(traced.svg, source.width, source.height).convert("RGB")
    diff = np.asarray(back, dtype=np.float64) - np.asarray(source.convert("RGB"), dtype=np.float64)
    return float(np.abs(diff).mean())


def _root(traced: TracedSvg) -> ET.Element:
    return ET.fromstring(traced.svg.encode("utf-8"))


@pytest.mark.parametrize("detail", DETAILS)
@pytest.mark.parametrize("name", list(IMAGES))
def test_traced_svg_is_a_standalone_document_close_to_the_input(name: str, detail: str) -> None:
    source = IMAGES[name](256)
    traced = trace_svg(source, detail=detail)
    assert traced.svg.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    root = _root(traced)
    assert root.tag == f"{SVG_NS}svg"
    assert (root.get("width"), root.get("height"), root.get("viewBox")) == ("256", "256", "0 0 256 256")
    paths = root.findall(f".//{SVG_NS}path")
    assert traced.paths == len(paths) > 0
    assert all(p.get("d") and p.get("fill", "").startswith("#") for p in paths)
    assert root.find(f".//{SVG_NS}image") is None  # vectors only, no embedded raster
    assert traced.seconds > 0
    assert _rgb_mae(traced, source) < MAE_BOUNDS[name][detail]


def _busy(size: int = 256) -> Image.Image:
    """The scene with pixel noise, like model output: where the presets differ most."""
    noise = np.random.default_rng(0).integers(-24, 25, (size, size, 3))
    return Image.fromarray(np.clip(np.asarray(_scene(size), dtype=np.int16) + noise, 0, 255).astype(np.uint8))


@pytest.mark.parametrize("make", [_gradient, _busy], ids=["gradient", "busy"])
def test_high_detail_is_at_least_as_close_as_low(make: Callable[[int], Image.Image]) -> None:
    source = make(256)
    low, medium, high = (trace_svg(source, detail=d) for d in ("low", "medium", "high"))
    assert _rgb_mae(high, source) <= _rgb_mae(medium, source) <= _rgb_mae(low, source)
    assert low.paths < medium.paths < high.paths  # busy: 842 / 865 / 2952 paths


@pytest.mark.parametrize("make", [_circles, _rectangles], ids=["circles", "rectangles"])
def test_flat_art_is_traced_alike_at_every_detail(make: Callable[[int], Image.Image]) -> None:
    # A few flat colours leave the presets nothing to differ on but coordinate rounding (0.53 / 0.55 / 0.54).
    source = make(256)
    errors = [_rgb_mae(trace_svg(source, detail=d), source) for d in DETAILS]
    assert max(errors) - min(errors) < 0.1


@pytest.mark.parametrize("make", [_cutout, _holed], ids=["cutout", "hole"])
@pytest.mark.parametrize("detail", DETAILS)
def test_transparent_areas_stay_transparent(make: Callable[[int], Image.Image], detail: str) -> None:
    source = make(256)
    traced = trace_svg(source, detail=detail)
    back = np.asarray(_render(traced.svg, 256, 256))
    alpha = np.asarray(source)[..., 3]
    # Away from the outlines (which are anti-aliased, and traced with curves), alpha must match exactly.
    clear = ndimage.binary_erosion(alpha == 0, iterations=3)
    solid = ndimage.binary_erosion(alpha == 255, iterations=3)
    assert clear.any() and solid.any()
    assert (back[..., 3][clear] == 0).all()
    assert (back[..., 3][solid] == 255).all()
    diff = np.abs(back[..., :3][solid].astype(np.float64) - np.asarray(source)[..., :3][solid])
    assert diff.mean() < 6.0
    # The clip is a path of its own, in the document's defs.
    assert _root(traced).find(f".//{SVG_NS}clipPath") is not None


def test_opaque_input_has_no_clip() -> None:
    traced = trace_svg(_circles(64).convert("RGBA"))
    assert _root(traced).find(f".//{SVG_NS}clipPath") is None


def test_a_fully_transparent_image_has_no_paths() -> None:
    traced = trace_svg(Image.new("RGBA", (40, 30), (255, 0, 0, 0)))
    root = _root(traced)
    assert traced.paths == 0 and root.find(f".//{SVG_NS}path") is None
    assert (root.get("width"), root.get("height"), root.get("viewBox")) == ("40", "30", "0 0 40 30")
    assert np.asarray(_render(traced.svg, 40, 30))[..., 3].max() == 0


@pytest.mark.parametrize("detail", DETAILS)
def test_large_images_keep_their_size_and_trace_time_is_reported(detail: str) -> None:
    """1024x1024 (low traces at 512 and scales back up): the document keeps the input's size; the trace time and
    document size are printed (pytest -s), never asserted."""
    source = _scene(1024)
    traced = trace_svg(source, detail=detail)
    root = _root(traced)
    assert (root.get("width"), root.get("height"), root.get("viewBox")) == ("1024", "1024", "0 0 1024 1024")
    mae = _rgb_mae(traced, source)
    assert mae < {"low": 3.5, "medium": 2.0, "high": 2.0}[detail]  # measured 2.22 / 1.17 / 1.17
    print(  # noqa: T201
        f"trace_svg detail={detail}: 1024x1024 in {traced.seconds * 1000:.0f} ms, {len(traced.svg) / 1e3:.1f} kB, "
        f"{traced.paths} paths, RGB MAE {mae:.2f}"
    )


def test_a_non_square_image_downscaled_keeps_its_aspect() -> None:
    source = _cutout(256).resize((1200, 300))
    traced = trace_svg(source, detail="medium")  # traced at 1024x256
    root = _root(traced)
    assert (root.get("width"), root.get("height"), root.get("viewBox")) == ("1200", "300", "0 0 1200 300")
    assert 'transform="scale(' in traced.svg
    back = np.asarray(_render(traced.svg, 1200, 300))[..., 3]
    alpha = np.asarray(source)[..., 3]
    clear = ndimage.binary_erosion(alpha == 0, iterations=6)
    solid = ndimage.binary_erosion(alpha == 255, iterations=6)
    assert (back[clear] == 0).all() and (back[solid] == 255).all()


def test_other_modes_are_traced() -> None:
    grey = _circles(64).convert("L")
    traced = trace_svg(grey)
    assert traced.paths > 0
    back = np.asarray(_render(traced.svg, 64, 64).convert("L"), dtype=np.float64)
    assert np.abs(back - np.asarray(grey, dtype=np.float64)).mean() < 4.0  # measured 2.48 (edges of a small image)


def test_traced_svg_is_frozen() -> None:
    traced = trace_svg(_rectangles(32))
    with pytest.raises(dataclasses.FrozenInstanceError):
        traced.paths = 0  # type: ignore[misc]


def test_unknown_detail_is_refused() -> None:
    with pytest.raises(ValueError, match="detail must be one of low, medium, high"):
        trace_svg(_rectangles(32), detail="ultra")


def test_missing_vtracer_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "vtracer", None)  # makes `import vtracer` raise ImportError
    with pytest.raises(ConfigurationError, match="pip install vtracer"):
        trace_svg(_rectangles(32))
