"""Vector output: trace a finished raster image into a standalone SVG document (``output_format: "svg"``).

This module owns raster-to-vector tracing; it knows nothing of requests. The tracer is vtracer (visioncortex,
MIT), imported only when an SVG is asked for, so a server without it still starts and serves every other format.
What it adds around vtracer, each measured on 1024x1024 images:

* **Colour reduction first.** vtracer clusters neighbouring pixels by colour difference, so a smooth gradient
  (every step a level or two) collapses into one flat shape (mean error ~42/255 on a plain two-axis gradient).
  Quantising to an adaptive palette beforehand turns gradients into bands it can trace, and removes the
  pixel noise of model output that would otherwise become thousands of speckle paths.
* **Transparency.** vtracer ignores alpha except for a heuristic that keys out transparent pixels only when
  enough of them lie on a few sampled rows, so a transparent hole inside an opaque picture came out black.
  Here colours are traced with the transparent pixels filled from their nearest visible neighbour (no dark
  fringe along the edge), and the alpha mask (cut at half) is traced separately as a ``clipPath``: nothing is
  painted where the input was transparent.
* **Size.** Tracing time grows with pixel count and palette size, so large inputs are downscaled to the preset's
  ``max_side`` first; the document keeps the input's ``width``, ``height`` and ``viewBox``, and a ``scale``
  transform maps the traced coordinates onto them.
"""

from __future__ import annotations

import io
import re
import time
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from imageforge.errors import ConfigurationError

__all__ = ["DETAILS", "TracedSvg", "trace_svg"]

_ALPHA_CUT = 128  # alpha below this is transparent in the SVG (the clip path is binary)
_CLIP_ID = "imageforge-visible"  # namespaced: several SVGs inlined in one HTML page share one id space


@dataclass(frozen=True)
class TracedSvg:
    """A traced image: ``svg`` is a complete UTF-8 SVG document sized like the input, ``paths`` the number of
    ``<path>`` elements in it (the transparency clip's included), ``seconds`` the time tracing took."""

    svg: str
    paths: int
    seconds: float


@dataclass(frozen=True)
class _Preset:
    max_side: int  # longer side traced at most (larger inputs are downscaled first)
    colors: int  # adaptive palette size before tracing
    filter_speckle: int  # vtracer: drop patches smaller than this many pixels square (in traced pixels)
    length_threshold: float  # vtracer: segment length (3.5..10) under which curves are subdivided
    path_precision: int  # vtracer: decimal places of path coordinates


# Measured at 1024x1024 on 2 CPU cores, low / medium / high: a crop of embedded-model output (docs/gallery.png)
# 0.12 / 0.38 / 0.61 s, 175 / 910 / 2060 kB, RGB mean error 11.5 / 9.1 / 7.2; a dense emoji sheet (the worst case
# seen) 0.19 / 0.68 / 0.99 s, 212 / 1187 / 2071 kB; flat art 0.06 / 0.18 / 0.18 s, 5-11 kB, error 2.2 / 1.2 / 1.2.
# Tracing at 1536 instead of 1024 took high to 2.6-4.5 s and 3-5 MB for little gain, hence max_side 1024.
_PRESETS: dict[str, _Preset] = {
    "low": _Preset(max_side=512, colors=16, filter_speckle=6, length_threshold=6.0, path_precision=0),
    "medium": _Preset(max_side=1024, colors=32, filter_speckle=6, length_threshold=4.0, path_precision=1),
    "high": _Preset(max_side=1024, colors=64, filter_speckle=2, length_threshold=4.0, path_precision=2),
}
DETAILS: tuple[str, ...] = tuple(_PRESETS)
_SVG_BODY = re.compile(r"<svg\b[^>]*>(.*)</svg>", re.DOTALL)
_EMPTY_PATH = re.compile(r'<path d="\s*"[^>]*/>\s*')  # vtracer's outline of a shape too small to have one


def trace_svg(image: Image.Image, *, detail: str = "medium") -> TracedSvg:
    """Trace ``image`` (any mode; RGBA keeps its transparency) into an SVG with colour-filled spline paths.

    ``detail`` picks a preset:

    ======  ========  ======  =======  ======  =========
    detail  max side  colors  speckle  length  precision
    ======  ========  ======  =======  ======  =========
    low     512       16      6 px     6.0     0
    medium  1024      32      6 px     4.0     1
    high    1024      64      2 px     4.0     2
    ======  ========  ======  =======  ======  =========

    *max side*: the longest side traced (larger images are downscaled first, the document keeps their size);
    *colors*: the adaptive palette the image is reduced to; *speckle*: patches smaller than this square are
    dropped; *length*: vtracer's curve segment length (shorter follows outlines more closely); *precision*:
    decimal places of coordinates (in traced pixels). vtracer's other settings are its defaults (stacked
    shapes, splines, 60° corners).

    Raises ``ConfigurationError`` when vtracer is not installed, ``ValueError`` for an unknown ``detail``.
    """
    preset = _PRESETS.get(detail)
    if preset is None:
        raise ValueError(f"detail must be one of {', '.join(DETAILS)}, got {detail!r}")
    if image.width < 1 or image.height < 1:
        raise ValueError(f"cannot trace an empty image ({image.width}x{image.height})")
    try:
        import vtracer  # type: ignore[import-untyped, import-not-found, unused-ignore]  # no py.typed
    except ImportError as exc:
        raise ConfigurationError(
            "output_format 'svg' needs the vtracer package, which is not installed: pip install vtracer"
        ) from exc

    start = time.perf_counter()
    width, height = image.size
    rgba = image.convert("RGBA")
    scale = min(1.0, preset.max_side / max(width, height))
    if scale < 1.0:
        # Pillow resizes RGBA premultiplied, so transparent pixels' colours do not bleed into the visible ones.
        traced_size = (max(1, round(width * scale)), max(1, round(height * scale)))
        rgba = rgba.resize(traced_size, Image.Resampling.LANCZOS, reducing_gap=2.0)
    visible = np.asarray(rgba.getchannel("A")) >= _ALPHA_CUT

    parts: list[str] = []
    if visible.any():
        rgb = np.asarray(rgba.convert("RGB"))
        if not visible.all():
            # Nearest visible colour under every transparent pixel: the shapes then run on past the clip's edge
            # instead of meeting a stray (often black) colour right at it.
            rows, cols = ndimage.distance_transform_edt(~visible, return_distances=False, return_indices=True)
            rgb = rgb[rows, cols]
        colours = _reduce_colours(Image.fromarray(rgb), preset.colors)
        shapes = _body(
            vtracer.convert_raw_image_to_svg(
                _png(colours),
                img_format="png",
                colormode="color",
                hierarchical="stacked",  # shapes overlap rather than abut: no hairline seams between them
                mode="spline",
                filter_speckle=preset.filter_speckle,
                color_precision=8,  # the palette above already chose the colours; keep them exact
                layer_difference=1,  # ... and keep every palette colour its own layer
                length_threshold=preset.length_threshold,
                path_precision=preset.path_precision,
            )
        )
        if visible.all():
            parts.append(shapes)
        else:
            mask = Image.fromarray(np.where(visible, 0, 255).astype(np.uint8))  # binary mode traces the dark side
            outline = _body(
                vtracer.convert_raw_image_to_svg(
                    _png(mask.convert("RGB")),
                    img_format="png",
                    colormode="binary",
                    filter_speckle=preset.filter_speckle,
                    length_threshold=preset.length_threshold,
                    path_precision=preset.path_precision,
                )
            )
            parts.append(f'<defs><clipPath id="{_CLIP_ID}">{outline}</clipPath></defs>')
            parts.append(f'<g clip-path="url(#{_CLIP_ID})">{shapes}</g>')

    traced_w, traced_h = rgba.size
    content = "\n".join(parts)
    if (traced_w, traced_h) != (width, height):
        # userSpaceOnUse clip coordinates follow the referencing element's transform, so one scale covers both.
        content = f'<g transform="scale({width / traced_w:.6g} {height / traced_h:.6g})">\n{content}\n</g>'
    svg = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">\n{content}\n</svg>\n'
    )
    return TracedSvg(svg=svg, paths=svg.count("<path"), seconds=time.perf_counter() - start)


def _reduce_colours(image: Image.Image, colours: int) -> Image.Image:
    """RGB -> RGB with at most ``colours`` colours: a fast-octree palette (~10 ms at 1024x1024, median cut ~400 ms),
    then every pixel mapped to its nearest palette colour. No dithering: its grain would be traced as speckles."""
    palette = image.quantize(colours, method=Image.Quantize.FASTOCTREE)
    return image.quantize(palette=palette, dither=Image.Dither.NONE).convert("RGB")


def _png(image: Image.Image) -> bytes:
    # vtracer decodes an encoded image much faster than it takes a Python list of pixel tuples (0.1 s vs 1.3 s at
    # 1024x1024); level 0 skips compression work that the decoder would only undo.
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=0)
    return buf.getvalue()


def _body(document: str) -> str:
    """The elements inside vtracer's ``<svg>`` (its own root has no viewBox; ours replaces it)."""
    match = _SVG_BODY.search(document)
    if match is None:
        raise RuntimeError("vtracer returned a document without an <svg> root")
    return _EMPTY_PATH.sub("", match.group(1)).strip()
