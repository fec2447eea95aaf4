"""The embedded engine: the engine contract on the shipped weights, plus what only it promises."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from imageforge.engines.embedded.engine import EmbeddedEngine
from imageforge.params import GenerationParams
from tests.engines.contract import EngineContract, max_diff


@pytest.fixture
def engine(embedded_engine: EmbeddedEngine) -> EmbeddedEngine:
    return embedded_engine


class TestEmbeddedContract(EngineContract):
    size = (64, 64)
    other_sizes = ((96, 64), (64, 96), (33, 17))


def test_capabilities_are_data(engine: EmbeddedEngine) -> None:
    caps = engine.capabilities
    assert caps.alpha == "native" and caps.img2img and caps.inpaint
    assert caps.quality_steps == {"low": 10, "medium": 20, "high": 30, "xhigh": 45, "max": 60}
    assert caps.native_resolutions == ((engine.config.image_size, engine.config.image_size),)


def test_non_square_sizes_keep_the_art_square(engine: EmbeddedEngine) -> None:
    p = GenerationParams(prompt="a red heart", width=96, height=32, steps=6, seed=3, background="transparent")
    img = engine.generate([p])[0].images[0]
    alpha = np.asarray(img.getchannel("A"))
    # The square art fills the centred 32x32 region; the margins are transparent, not stretched art.
    assert alpha[:, :32].max() == 0 and alpha[:, 64:].max() == 0


def test_img2img_stays_close_to_the_init_image(engine: EmbeddedEngine) -> None:
    init = Image.new("RGB", (64, 64), (20, 120, 230))
    near = GenerationParams(prompt="a red heart", width=64, height=64, steps=10, seed=5, init_image=init, strength=0.3)
    free = GenerationParams(prompt="a red heart", width=64, height=64, steps=10, seed=5)
    img2img = np.asarray(engine.generate([near])[0].images[0], dtype=float)
    text2img = np.asarray(engine.generate([free])[0].images[0], dtype=float)
    target = np.asarray(init, dtype=float)
    assert np.abs(img2img - target).mean() < np.abs(text2img - target).mean()


def test_long_prompts_report_what_the_encoder_saw(engine: EmbeddedEngine) -> None:
    prompt = "a red apple " + "on a wooden table " * 20
    p = GenerationParams(prompt=prompt, width=32, height=32, steps=2, seed=1)
    used = engine.generate([p])[0].prompt
    assert prompt.startswith(used) and 10 < len(used) < len(prompt)
    short = GenerationParams(prompt="a red apple", width=32, height=32, steps=2, seed=1)
    assert engine.generate([short])[0].prompt == "a red apple"


def test_guidance_changes_the_image(engine: EmbeddedEngine) -> None:
    a = engine.generate([GenerationParams(prompt="a star", width=32, height=32, steps=6, seed=1)])[0]
    b = engine.generate([GenerationParams(prompt="a star", width=32, height=32, steps=6, seed=1, guidance_scale=1.0)])[
        0
    ]
    assert max_diff(a.images[0], b.images[0]) > 5


def test_inpainting_outside_the_drawn_square_keeps_the_original(engine: EmbeddedEngine) -> None:
    init = Image.new("RGB", (96, 32), (20, 120, 230))
    mask = Image.new("L", (96, 32), 255)  # everything masked, but the model draws only the centred 32x32
    p = GenerationParams(prompt="a red heart", width=96, height=32, steps=6, seed=2, init_image=init, mask=mask)
    out = np.asarray(engine.generate([p])[0].images[0])
    assert (out[:, :32] == (20, 120, 230)).all() and (out[:, 64:] == (20, 120, 230)).all()
    assert np.abs(out[:, 32:64].astype(int) - (20, 120, 230)).max() > 10


def test_negative_prompts_change_the_image_and_keep_batches_apart(engine: EmbeddedEngine) -> None:
    plain = GenerationParams(prompt="a heart", width=32, height=32, steps=6, seed=4)
    negative = GenerationParams(prompt="a heart", width=32, height=32, steps=6, seed=4, negative_prompt="red")
    assert plain.batch_key() != negative.batch_key()
    a = engine.generate([plain])[0].images[0]
    b = engine.generate([negative])[0].images[0]
    assert max_diff(a, b) > 5


def _mean_diff(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, dtype=np.float32) - np.asarray(b, dtype=np.float32)).mean())


def test_an_animation_walks_smoothly_through_noise_from_the_still_image(engine: EmbeddedEngine) -> None:
    """Frames of one loop: frame 0 is the still image of the seed, neighbours are closer than opposite frames,
    and the last frame leads back to the first (a loop has no jump); batching changes nothing."""
    common = {"prompt": "a red apple", "width": 64, "height": 64, "steps": 8, "seed": 11}
    still = engine.generate([GenerationParams(**common)])[0].images[0]
    walk = GenerationParams(**common, n=8, frames=8)
    frames = engine.generate([walk])[0].images
    assert len(frames) == 8
    assert max_diff(frames[0], still) == 0
    near = [_mean_diff(frames[i], frames[(i + 1) % 8]) for i in range(8)]
    far = [_mean_diff(frames[i], frames[(i + 4) % 8]) for i in range(8)]
    assert max(near) > 0, "the frames move"
    assert sum(near) / 8 < sum(far) / 8, (near, far)
    plain = GenerationParams(**{**common, "seed": 3}, n=2)
    batched = engine.generate([walk, plain])
    assert all(max_diff(a, b) == 0 for a, b in zip(batched[0].images, frames, strict=True))
    assert max_diff(batched[1].images[1], engine.generate([plain])[0].images[1]) == 0


def test_the_svg_of_a_drawing_resembles_the_drawing(engine: EmbeddedEngine) -> None:
    """output_format svg traces the engine's flat art: rendered back (resvg), it is close to the raster."""
    import io

    import resvg_py

    from imageforge.imaging.encode import encode

    image = engine.generate([GenerationParams(prompt="a red apple", width=256, height=256, steps=8, seed=5)])[0]
    raster = image.images[0].convert("RGB")
    errors = {}
    for detail in ("low", "medium", "high"):
        svg = encode(raster, "svg", svg_detail=detail).decode("utf-8")
        back = Image.open(io.BytesIO(bytes(resvg_py.svg_to_bytes(svg_string=svg, width=256, height=256))))
        errors[detail] = _mean_diff(back.convert("RGB"), raster)
    assert errors["high"] <= errors["low"] + 0.5, errors
    assert errors["medium"] < 12, errors  # mean error out of 255 per channel, measured ~5-9 on this art


def test_planning_draws_the_candidate_its_model_scores_best(
    engine: EmbeddedEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """complexity: every image is drafted from plan_candidates starts (candidate 0 is the seed itself), the
    drafts are scored by the model's own prompt likelihood, and the image is drawn from the best start, exactly
    as that start draws unplanned. An animation plans its subject once; its frames share the winner."""
    from imageforge.engines.embedded.engine import PLAN_STRIDE

    scores: list[list[float]] = []
    score = engine._sampler.alignment

    def recording(*args: object, **kwargs: object) -> object:
        out = score(*args, **kwargs)
        scores.append(out.tolist())
        return out

    monkeypatch.setattr(engine._sampler, "alignment", recording)
    common = {"prompt": "a red apple", "width": 64, "height": 64, "steps": 4}
    planned = engine.generate([GenerationParams(**common, seed=11, n=2, plan_candidates=4)])[0]
    assert planned.drafts == 8 and planned.seeds == (11, 12)
    table = np.array([s for part in scores for s in part]).reshape(2, 4)  # image-major, candidate-minor
    assert len(set(table.flatten().tolist())) == 8, "every candidate is a different draft"
    for image, seed in enumerate((11, 12)):
        best = int(table[image].argmax())
        alone = engine.generate([GenerationParams(**common, seed=seed + best * PLAN_STRIDE)])[0].images[0]
        assert max_diff(planned.images[image], alone) <= 2, (image, best)  # float rounding of a smaller batch
    scores.clear()
    walk = engine.generate([GenerationParams(**common, seed=11, n=3, frames=3, plan_candidates=4)])[0]
    assert walk.drafts == 4 and len(walk.images) == 3
    assert max_diff(walk.images[0], planned.images[0]) <= 2, "frame 0 is the planned still of the same seed"
    assert engine.generate([GenerationParams(**common, seed=11)])[0].drafts == 0


def test_planning_is_cancelled_before_anything_is_drawn(engine: EmbeddedEngine) -> None:
    from imageforge.errors import GenerationCancelled

    steps: list[int] = []
    p = GenerationParams(prompt="a red apple", width=64, height=64, steps=8, seed=1, plan_candidates=8)
    with pytest.raises(GenerationCancelled):
        engine.generate([p], on_step=lambda st: steps.append(st.step), cancelled=lambda: True)
    assert steps == []


def test_the_planning_score_prefers_a_drawing_of_the_prompt(engine: EmbeddedEngine) -> None:
    """Sampler.alignment, the score planning ranks drafts by: under "a red apple", the model's own apple scores
    above its car, and both above an empty (fully transparent) picture."""
    import torch

    sampler = engine._sampler
    drawn = []
    for prompt in ("a red apple", "a blue car"):
        cond = engine._text.encode([prompt])
        concept = engine._concept(prompt)
        refs = engine._reference_tensor([concept], [4], [prompt])
        init, schedule, strength = engine._schedule(10, 1.0, None, refs, [prompt])
        for st in sampler.run(cond, engine._uncond, [4], schedule, 3.0, init, None, strength, refs):
            last = st.sample
        drawn.append(last[0])
    blank = torch.full_like(drawn[0], -1.0)
    prompt = "a red apple"
    cond = engine._text.encode([prompt] * 3)
    refs = engine._reference_tensor([engine._concept(prompt)] * 3, [4, 4, 4], [prompt] * 3)
    apple, car, empty = sampler.alignment(torch.stack([*drawn, blank]), cond, engine._uncond, refs).tolist()
    assert apple > car > empty or apple > empty > car, (apple, car, empty)
    assert apple > car and apple > empty
