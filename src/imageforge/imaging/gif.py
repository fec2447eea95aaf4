"""Animated GIF encoding: a short sequence of finished frames -> one looping GIF (``output_format: "gif"``).

This module owns the GIF container and its per-frame palettes; it knows nothing of requests. Every input frame
becomes exactly one GIF frame with the same delay, the animation loops forever, and RGBA frames keep their
transparency (GIF has one transparent palette index, so alpha is cut at half: below 128 transparent, else opaque).

The file is assembled here from Pillow's per-frame encoder (``GifImagePlugin.getheader`` / ``getdata``) rather
than with ``save_all=True``, because Pillow's multi-frame writer merges consecutive identical frames into one
(adding their delays, which can overflow the 16-bit delay field) and crops frames to changed regions: the caller
asked for N frames of D ms each, and that is what the file says.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import GifImagePlugin, Image

__all__ = ["MAX_FRAMES", "MAX_FRAME_DELAY_MS", "MIN_FRAMES", "encode_gif", "gif_frame_delay_ms"]

MIN_FRAMES = 2  # one frame is a still image: ask for png/webp instead
MAX_FRAMES = 16
# GIF's Graphic Control Extension stores the delay as an unsigned 16-bit count of centiseconds.
MAX_FRAME_DELAY_MS = 65_535 * 10
_LOOP_FOREVER = 0  # NETSCAPE2.0 loop count; 0 means repeat indefinitely
_DISPOSE_TO_BACKGROUND = 2  # clear each frame's area before the next: frames are whole pictures, not deltas
_ALPHA_CUT = 128  # alpha below this is GIF-transparent; GIF has no partial transparency


def gif_frame_delay_ms(ms: int) -> int:
    """The delay a GIF can actually store for ``ms`` milliseconds, in milliseconds (the API's rule for
    ``frame_duration_ms``).

    GIF delays are whole centiseconds in a 16-bit field, so the value is rounded to the nearest 10 ms (halves round
    up: 15 -> 20), never below 10 ms (a stored 0 means "no delay", which viewers replace with a default of their
    own), and capped at 655,350 ms (65,535 cs). The encoder writes exactly this value, and a decoder reading the
    file back reports it.
    """
    if ms <= 0:
        raise ValueError(f"frame duration must be a positive number of milliseconds, got {ms}")
    centiseconds = (ms + 5) // 10
    return min(max(centiseconds, 1), MAX_FRAME_DELAY_MS // 10) * 10


def encode_gif(frames: Sequence[Image.Image], frame_duration_ms: int) -> bytes:
    """Encode ``frames`` (2..16 images of one size, RGB or RGBA) as a GIF that loops forever, every frame shown for
    ``gif_frame_delay_ms(frame_duration_ms)``. RGB frames are opaque; an RGBA frame's pixels under half alpha become
    its transparent index. Every frame has disposal 2, so nothing of the previous frame shows through a later
    frame's transparent pixels. Other modes are converted (to RGBA when they carry transparency)."""
    if not MIN_FRAMES <= len(frames) <= MAX_FRAMES:
        raise ValueError(f"a GIF needs {MIN_FRAMES} to {MAX_FRAMES} frames, got {len(frames)}")
    size = frames[0].size
    for i, frame in enumerate(frames):
        if frame.size != size:
            raise ValueError(f"all frames must have one size: frame {i} is {frame.size}, frame 0 is {size}")
    delay = gif_frame_delay_ms(frame_duration_ms)

    normalised = [_rgb_or_rgba(frame) for frame in frames]
    paletted: list[tuple[Image.Image, int | None]]
    if any(frame.mode == "RGBA" for frame in normalised):
        # Every frame then reserves a transparent index, even an opaque one (whose pixels never use it): decoders
        # such as Pillow's fix the canvas mode from frame 0, so an opaque first frame would make later frames'
        # transparent pixels come out as the background colour.
        paletted = [_keyed_palette(frame.convert("RGBA")) for frame in normalised]
    else:
        paletted = [(_opaque_palette(frame), None) for frame in normalised]
    # Header: signature, logical screen, frame 0's palette as the global table (decoders that ignore local tables
    # still get sensible colours) and the NETSCAPE2.0 loop extension.
    header, _ = GifImagePlugin.getheader(paletted[0][0], info={"loop": _LOOP_FOREVER})
    chunks: list[bytes] = list(header)
    for image, transparent_index in paletted:
        params: dict[str, Any] = {  # getdata passes these to the frame writer as encoder info
            "duration": delay,  # Pillow truncates ms/10; delay is already a multiple of 10
            "disposal": _DISPOSE_TO_BACKGROUND,
            "include_color_table": True,  # each frame carries its own adaptive palette
        }
        if transparent_index is not None:
            params["transparency"] = transparent_index
        chunks.extend(GifImagePlugin.getdata(image, **params))
    chunks.append(b";")  # GIF trailer
    return b"".join(chunks)


def _rgb_or_rgba(frame: Image.Image) -> Image.Image:
    if frame.mode in ("RGB", "RGBA"):
        return frame
    return frame.convert("RGBA" if frame.has_transparency_data else "RGB")


def _opaque_palette(frame: Image.Image) -> Image.Image:
    """An RGB frame -> a "P" image with its own 256-colour adaptive palette."""
    # Fast octree: ~10 ms for a 1024x1024 frame where median cut takes ~400 ms (libimagequant, the better one, is
    # not compiled into Pillow's wheels); it only picks the palette, and mapping every pixel to its nearest palette
    # colour afterwards (_map) recovers most of median cut's accuracy.
    palette = frame.quantize(256, method=Image.Quantize.FASTOCTREE)
    return _map(frame, palette)


def _keyed_palette(frame: Image.Image) -> tuple[Image.Image, int]:
    """An RGBA frame -> (a "P" image with 255 adaptive colours and a transparent entry, that entry's index)."""
    rgb = frame.convert("RGB")
    transparent = np.asarray(frame.getchannel("A")) < _ALPHA_CUT
    opaque_pixels = np.asarray(rgb)[~transparent]  # (N, 3)
    if opaque_pixels.size == 0:  # nothing visible: any colour will do, every pixel is the transparent index
        opaque_pixels = np.zeros((1, 3), dtype=np.uint8)
    # The palette comes from the visible pixels only (the RGB under transparent pixels is often black or noise and
    # would waste entries); 255 colours leave an index free for transparency.
    palette = Image.fromarray(opaque_pixels[np.newaxis]).quantize(255, method=Image.Quantize.FASTOCTREE)
    colours = (palette.getpalette() or [0, 0, 0])[: 255 * 3]  # index 255 at most for transparency
    transparent_index = len(colours) // 3
    mask = Image.fromarray(transparent.astype(np.uint8) * 255) if transparent.any() else None  # "L", 255 = hidden
    if mask is not None:
        # Paint the hidden pixels an exact palette colour first, so dithering does not diffuse their colour into
        # the visible edge next to them.
        rgb.paste(tuple(colours[:3]), mask=mask)
    image = _map(rgb, palette)
    image.putpalette([*colours, 0, 0, 0])  # the transparent entry's colour is never shown
    if mask is not None:
        image.paste(transparent_index, mask=mask)
    return image, transparent_index


def _map(rgb: Image.Image, palette: Image.Image) -> Image.Image:
    # Floyd-Steinberg: a 256-colour palette bands visibly on the smooth gradients image models produce (skies,
    # studio backgrounds); error diffusion trades the bands for a grain that is invisible at 1:1, for ~10 ms a frame
    # and ~30 % more bytes.
    return rgb.quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG)
