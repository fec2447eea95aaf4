from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image, ImageDraw

from imageforge.imaging.gif import MAX_FRAME_DELAY_MS, encode_gif, gif_frame_delay_ms

# Mean absolute error per channel between an input frame and its decoded GIF frame (0..255). Measured on the
# frames below: 3.8-3.9 on the gradient channels of the RGB frames (an adaptive 256-colour palette with
# Floyd-Steinberg dithering; 5.0 for the same frames at 1024x1024), 0.0 on the visible pixels of the flat RGBA
# frames (few colours, all in the palette).
RGB_MAE_BOUND = 6.0
RGBA_MAE_BOUND = 1.0


def _rgb_frame(i: int, size: int = 128) -> Image.Image:
    """A smooth gradient (the hard case for a 256-colour palette) with a shape that moves from frame to frame."""
    x = np.linspace(0, 255, size)[None, :]
    y = np.linspace(0, 255, size)[:, None]
    arr = np.stack(
        [np.broadcast_to(x, (size, size)), np.broadcast_to(y, (size, size)), np.full((size, size), 40.0 * i % 256)],
        axis=-1,
    )
    img = Image.fromarray(arr.astype(np.uint8))
    draw = ImageDraw.Draw(img)
    off = 8 * i
    draw.ellipse((10 + off, 20, 50 + off, 60), fill=(250, 250, 250))
    draw.rectangle((60, 70 + off // 2, 110, 100 + off // 2), fill=(200, 20, 120))
    return img


def _rgba_frame(i: int, size: int = 96) -> Image.Image:
    """Flat shapes on a fully transparent background, with a transparent hole in the middle."""
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    draw.ellipse((8 + 4 * i, 8, 70 + 4 * i, 70), fill=(230, 120, 20, 255))
    draw.ellipse((30 + 4 * i, 30, 48 + 4 * i, 48), fill=(0, 0, 0, 0))
    draw.rectangle((50, 60, 90, 90), fill=(20, 60, 200, 255))
    return img


def _decode(data: bytes) -> tuple[Image.Image, list[Image.Image], list[int]]:
    gif = Image.open(io.BytesIO(data))
    frames: list[Image.Image] = []
    durations: list[int] = []
    for index in range(gif.n_frames):
        gif.seek(index)
        durations.append(gif.info["duration"])
        frames.append(gif.convert("RGBA"))
    return gif, frames, durations


def _channel_mae(a: Image.Image, b: Image.Image, where: np.ndarray | None = None) -> np.ndarray:
    diff = np.abs(np.asarray(a.convert("RGB"), dtype=np.float64) - np.asarray(b.convert("RGB"), dtype=np.float64))
    return diff[where] if where is not None else diff.reshape(-1, 3)


def test_rgb_frames_round_trip_as_an_endless_opaque_animation() -> None:
    frames = [_rgb_frame(i) for i in range(5)]
    data = encode_gif(frames, 120)
    assert data.startswith(b"GIF89a") and data.endswith(b";")
    gif, decoded, durations = _decode(data)
    assert gif.format == "GIF" and gif.size == (128, 128)
    assert gif.n_frames == 5 and gif.is_animated
    assert gif.info["loop"] == 0
    assert durations == [120] * 5
    for source, back in zip(frames, decoded, strict=True):
        assert np.asarray(back)[..., 3].min() == 255  # opaque: no transparent index in play
        assert (_channel_mae(source, back).mean(axis=0) < RGB_MAE_BOUND).all()
    # The frames differ, and each decoded frame is closest to its own input (not, say, frame 0 repeated).
    errors = [[_channel_mae(src, back).mean() for src in frames] for back in decoded]
    assert [int(np.argmin(row)) for row in errors] == list(range(5))


def test_rgba_frames_keep_their_transparency() -> None:
    frames = [_rgba_frame(i) for i in range(3)]
    gif, decoded, durations = _decode(encode_gif(frames, 50))
    assert gif.n_frames == 3 and durations == [50, 50, 50]
    for index, (source, back) in enumerate(zip(frames, decoded, strict=True)):
        gif.seek(index)
        assert gif.disposal_method == 2
        visible = np.asarray(source)[..., 3] >= 128
        back_alpha = np.asarray(back)[..., 3]
        # Transparent exactly where the input was (including the hole, and the area the previous frame covered).
        assert np.array_equal(back_alpha == 255, visible)
        assert np.array_equal(back_alpha == 0, ~visible)
        assert (_channel_mae(source, back, visible).mean(axis=0) < RGBA_MAE_BOUND).all()


def test_partial_alpha_is_cut_at_half() -> None:
    frame = Image.new("RGBA", (16, 16), (10, 200, 30, 255))
    frame.paste((10, 200, 30, 127), (0, 0, 16, 4))
    frame.paste((10, 200, 30, 128), (0, 4, 16, 8))
    _, decoded, _ = _decode(encode_gif([frame, frame.transpose(Image.Transpose.FLIP_TOP_BOTTOM)], 100))
    alpha = np.asarray(decoded[0])[..., 3]
    assert (alpha[:4] == 0).all() and (alpha[4:] == 255).all()
    flipped = np.asarray(decoded[1])[..., 3]
    assert (flipped[-4:] == 0).all() and (flipped[:-4] == 255).all()


def test_mixed_rgb_and_rgba_frames() -> None:
    rgba = _rgba_frame(0)
    rgb = _rgb_frame(0, size=96)
    _, decoded, _ = _decode(encode_gif([rgb, rgba, rgb], 100))
    assert np.asarray(decoded[0])[..., 3].min() == 255
    assert np.array_equal(np.asarray(decoded[1])[..., 3] == 255, np.asarray(rgba)[..., 3] >= 128)
    assert np.asarray(decoded[2])[..., 3].min() == 255


def test_identical_frames_stay_separate_frames() -> None:
    # Pillow's own multi-frame writer would merge these into one frame of the summed delay (and, at the maximum
    # delay, overflow the 16-bit field); the caller asked for three frames.
    frame = _rgb_frame(1, size=32)
    for duration in (100, MAX_FRAME_DELAY_MS):
        gif, _, durations = _decode(encode_gif([frame, frame.copy(), frame], duration))
        assert gif.n_frames == 3 and durations == [duration] * 3


def test_other_modes_are_converted() -> None:
    grey = Image.linear_gradient("L").resize((32, 32))
    grey_alpha = _rgba_frame(0, size=32).convert("LA")
    gif, decoded, _ = _decode(encode_gif([grey, grey_alpha], 100))
    assert gif.n_frames == 2
    assert np.asarray(decoded[0])[..., 3].min() == 255
    assert np.asarray(decoded[1])[..., 3].min() == 0


@pytest.mark.parametrize(
    "ms,expected",
    [
        (1, 10),  # never 0: a zero delay means "no delay" (viewers substitute their own)
        (4, 10),
        (5, 10),
        (14, 10),
        (15, 20),  # halves round up
        (16, 20),
        (100, 100),
        (104, 100),
        (105, 110),
        (655_344, 655_340),
        (655_350, 655_350),
        (655_355, 655_350),  # capped: 65,535 centiseconds is the most the 16-bit field holds
        (10**9, 655_350),
    ],
)
def test_frame_delay_rounds_to_centiseconds_and_caps(ms: int, expected: int) -> None:
    assert gif_frame_delay_ms(ms) == expected


@pytest.mark.parametrize("ms,expected", [(15, 20), (33, 30), (10**7, 655_350)])
def test_the_encoded_delay_is_the_rounded_one(ms: int, expected: int) -> None:
    _, _, durations = _decode(encode_gif([_rgb_frame(0, 16), _rgb_frame(1, 16)], ms))
    assert durations == [expected, expected]


@pytest.mark.parametrize("ms", [0, -10])
def test_non_positive_duration_is_refused(ms: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        gif_frame_delay_ms(ms)
    with pytest.raises(ValueError, match="positive"):
        encode_gif([_rgb_frame(0, 16), _rgb_frame(1, 16)], ms)


@pytest.mark.parametrize("count", [0, 1, 17])
def test_frame_count_limits(count: int) -> None:
    with pytest.raises(ValueError, match="2 to 16 frames"):
        encode_gif([_rgb_frame(0, 8)] * count, 100)


def test_sixteen_frames_is_allowed() -> None:
    gif, _, _ = _decode(encode_gif([_rgb_frame(i, 16) for i in range(16)], 100))
    assert gif.n_frames == 16


def test_frames_of_different_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="one size"):
        encode_gif([_rgb_frame(0, 16), _rgb_frame(1, 16), _rgb_frame(2, 24)], 100)


def test_encode_time_at_1024_is_reported() -> None:
    """Nine 1024x1024 frames: the time is printed (pytest -s), never asserted; the result is checked."""
    frames = [_rgb_frame(i, size=1024) for i in range(9)]
    start = time.perf_counter()
    data = encode_gif(frames, 100)
    elapsed = time.perf_counter() - start
    print(f"encode_gif: 9 frames of 1024x1024 in {elapsed * 1000:.0f} ms, {len(data) / 1e6:.2f} MB")  # noqa: T201
    gif = Image.open(io.BytesIO(data))
    assert gif.n_frames == 9 and gif.size == (1024, 1024)
