from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from imageforge.imaging.canvas import blend, fit_square, flatten, image_to_premultiplied, premultiplied_to_image
from imageforge.imaging.matte import matte


def test_premultiplied_round_trip() -> None:
    arr = np.zeros((4, 4, 4), dtype=np.float32)
    arr[0, 0] = [0.5, 0.25, 0.0, 0.5]  # premultiplied: straight colour (1.0, 0.5, 0.0) at half alpha
    img = premultiplied_to_image(arr)
    assert img.getpixel((0, 0)) == (255, 128, 0, 128)
    assert img.getpixel((1, 1)) == (0, 0, 0, 0)
    back = image_to_premultiplied(img)
    assert np.allclose(back[0, 0], arr[0, 0], atol=1 / 255)


def test_fit_square_centres_art_with_transparent_margins() -> None:
    art = Image.new("RGBA", (8, 8), (255, 0, 0, 255))
    out = fit_square(art, 30, 10)
    assert out.size == (30, 10)
    alpha = np.asarray(out.getchannel("A"))
    assert alpha[:, :10].max() == 0 and alpha[:, 20:].max() == 0 and alpha[:, 10:20].min() == 255


def test_flatten() -> None:
    img = Image.new("RGBA", (2, 1), (0, 0, 0, 0))
    img.putpixel((1, 0), (10, 20, 30, 255))
    assert flatten(img, "transparent").mode == "RGBA"
    opaque = flatten(img, "opaque")
    assert (
        opaque.mode == "RGB" and opaque.getpixel((0, 0)) == (255, 255, 255) and opaque.getpixel((1, 0)) == (10, 20, 30)
    )


def test_blend_keeps_original_pixels_exactly_outside_the_mask() -> None:
    gen = Image.new("RGBA", (8, 8), (255, 0, 0, 255))
    orig = Image.new("RGBA", (8, 8), (1, 2, 3, 200))
    mask = Image.new("L", (8, 8), 0)
    mask.paste(255, (0, 0, 4, 8))
    out = np.asarray(blend(gen, orig, mask))
    assert (out[:, 4:] == (1, 2, 3, 200)).all() and (out[:, :4] == (255, 0, 0, 255)).all()


def test_matte_keys_out_border_connected_background_only() -> None:
    img = Image.new("RGB", (64, 64), (255, 255, 255))
    d = ImageDraw.Draw(img)
    d.ellipse((12, 12, 52, 52), fill=(200, 30, 30))
    d.rectangle((28, 28, 36, 36), fill=(255, 255, 255))  # white *inside* the subject stays opaque
    a = np.asarray(matte(img).getchannel("A"))
    assert a[0, 0] == 0 and a[63, 63] == 0
    assert a[32, 32] == 255 and a[20, 32] == 255


def test_matte_unmixes_edge_colour() -> None:
    # A half-covered edge pixel (50 % red over white) becomes semi-transparent pure red, not pink.
    img = Image.new("RGB", (32, 32), (255, 255, 255))
    img.paste((228, 128, 128), (7, 7, 25, 25))  # the anti-aliased rim: half red, half white
    img.paste((200, 0, 0), (8, 8, 24, 24))
    out = matte(img, tolerance=0.5, softness=0.4)
    r, g, b, a = out.getpixel((7, 16))
    assert 0 < a < 255 and r > 150 and g < 60 and b < 60
    assert out.getpixel((0, 0))[3] == 0 and out.getpixel((16, 16)) == (200, 0, 0, 255)
