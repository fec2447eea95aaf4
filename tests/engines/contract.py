"""The engine contract: every engine's test class inherits this mixin and provides an ``engine`` fixture.

Seed determinism, batch == single, ``n`` images, exact sizes, alpha when asked, step callbacks with previews,
cancellation mid-run, image-to-image and inpainting.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from PIL import Image

from imageforge.engines.base import Engine
from imageforge.errors import GenerationCancelled
from imageforge.params import GenerationParams, StepPreview


def pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGBA"), dtype=np.int16)


def max_diff(a: Image.Image, b: Image.Image) -> int:
    return int(np.abs(pixels(a) - pixels(b)).max())


class EngineContract:
    """Subclasses set ``size`` (a small size the engine accepts) and ``steps``, and define an ``engine`` fixture
    returning a loaded engine. ``batch_tolerance`` is the largest per-pixel difference (0-255) allowed between
    an image made in a batch and made alone (batched matmuls may round differently)."""

    size: tuple[int, int] = (64, 64)
    other_sizes: tuple[tuple[int, int], ...] = ((96, 64), (64, 96))
    steps: int = 4
    batch_tolerance: int = 2

    def params(self, **kw: Any) -> GenerationParams:
        base: dict[str, Any] = {
            "prompt": "a red apple",
            "width": self.size[0],
            "height": self.size[1],
            "steps": self.steps,
            "seed": 1234,
        }
        base.update(kw)
        return GenerationParams(**base)

    def init_image(self) -> Image.Image:
        w, h = self.size
        img = Image.new("RGB", (w, h), (30, 140, 220))
        img.paste((250, 210, 20), (w // 4, h // 4, 3 * w // 4, 3 * h // 4))
        return img

    # -- determinism ------------------------------------------------------------------------------------

    def test_same_seed_same_image(self, engine: Engine) -> None:
        a = engine.generate([self.params()])[0].images[0]
        b = engine.generate([self.params()])[0].images[0]
        assert max_diff(a, b) == 0

    def test_different_seed_different_image(self, engine: Engine) -> None:
        a = engine.generate([self.params(seed=1)])[0].images[0]
        b = engine.generate([self.params(seed=2)])[0].images[0]
        assert max_diff(a, b) > 10

    def test_batch_equals_single(self, engine: Engine) -> None:
        p1 = self.params(prompt="a red apple", seed=7, n=2)
        p2 = self.params(prompt="a blue car", seed=99)
        batched = engine.generate([p1, p2])
        alone1 = engine.generate([p1])[0]
        alone2 = engine.generate([p2])[0]
        assert batched[0].seeds == (7, 8) and batched[1].seeds == (99,)
        for x, y in zip(batched[0].images + batched[1].images, alone1.images + alone2.images, strict=True):
            assert max_diff(x, y) <= self.batch_tolerance

    def test_image_i_uses_seed_plus_i(self, engine: Engine) -> None:
        three = engine.generate([self.params(seed=40, n=3)])[0].images
        second = engine.generate([self.params(seed=41)])[0].images[0]
        assert max_diff(three[1], second) <= self.batch_tolerance

    # -- shape of the output ----------------------------------------------------------------------------

    def test_n_images(self, engine: Engine) -> None:
        result = engine.generate([self.params(n=3)])[0]
        assert len(result.images) == 3 and result.seeds == (1234, 1235, 1236)
        assert max_diff(result.images[0], result.images[1]) > 10

    def test_exact_sizes(self, engine: Engine) -> None:
        for w, h in (self.size, *self.other_sizes):
            img = engine.generate([self.params(width=w, height=h)])[0].images[0]
            assert img.size == (w, h)

    def test_opaque_is_rgb(self, engine: Engine) -> None:
        img = engine.generate([self.params(background="opaque")])[0].images[0]
        assert img.mode == "RGB"

    def test_alpha_when_asked(self, engine: Engine) -> None:
        img = engine.generate([self.params(background="transparent")])[0].images[0]
        assert img.mode == "RGBA"
        alpha = np.asarray(img.getchannel("A"))
        assert alpha.min() < 128, "a transparent-background image should have transparent pixels"

    # -- steps, previews, cancellation ------------------------------------------------------------------

    def test_step_callbacks_with_previews(self, engine: Engine) -> None:
        events: list[tuple[int, int]] = []
        previews: list[list[Image.Image]] = []

        def on_step(st: StepPreview) -> None:
            events.append((st.step, st.total_steps))
            previews.append(st.preview(0))

        p = self.params(n=2, width=self.other_sizes[0][0], height=self.other_sizes[0][1], background="transparent")
        final = engine.generate([p], on_step=on_step)[0].images
        assert events == [(i, self.steps) for i in range(1, self.steps + 1)]
        for imgs in previews:
            assert len(imgs) == 2
            assert all(im.size == (p.width, p.height) and im.mode == "RGBA" for im in imgs)
        # Previews are real intermediate states: the first differs from the final image.
        assert max_diff(previews[0][0], final[0]) > 10

    def test_cancellation_mid_run(self, engine: Engine) -> None:
        seen: list[int] = []

        def on_step(st: StepPreview) -> None:
            seen.append(st.step)

        with pytest.raises(GenerationCancelled):
            engine.generate([self.params(steps=6)], on_step=on_step, cancelled=lambda: len(seen) >= 2)
        assert seen == [1, 2], "the engine must stop at the first step boundary after cancellation"
        # ... and keeps serving afterwards.
        assert len(engine.generate([self.params()])[0].images) == 1

    # -- image-to-image and inpainting ------------------------------------------------------------------

    def test_img2img(self, engine: Engine) -> None:
        seen: list[int] = []
        p = self.params(steps=8, init_image=self.init_image(), strength=0.5)
        img = engine.generate([p], on_step=lambda st: seen.append(st.step))[0].images[0]
        assert img.size == self.size
        assert len(seen) == 4, "strength 0.5 runs half of the schedule"
        t2i = engine.generate([self.params(steps=8)])[0].images[0]
        assert max_diff(img, t2i) > 10

    def test_inpaint_keeps_unmasked_pixels(self, engine: Engine) -> None:
        init = self.init_image()
        w, h = self.size
        mask = Image.new("L", (w, h), 0)
        mask.paste(255, (0, 0, w // 2, h))  # repaint the left half
        img = engine.generate([self.params(init_image=init, mask=mask)])[0].images[0]
        out, src = pixels(img)[..., :3], pixels(init)[..., :3]
        assert np.array_equal(out[:, w // 2 + 1 :], src[:, w // 2 + 1 :]), "unmasked pixels must be untouched"
        assert np.abs(out[:, : w // 2] - src[:, : w // 2]).max() > 10, "masked pixels must be regenerated"
