"""The embedded sampler on a random-weight UNet of the same architecture at toy width (no shipped weights)."""

from __future__ import annotations

import pytest
import torch

from imageforge.engines.embedded.config import EmbeddedModelConfig
from imageforge.engines.embedded.network import build_unet
from imageforge.engines.embedded.sampler import Sampler
from imageforge.engines.embedded.text import TextEmbedding
from tests.engines.embedded.toy import CFG, embedding, toy_sampler


@pytest.fixture(scope="module")
def sampler() -> Sampler:
    return toy_sampler()


def test_yields_once_per_step_and_ends_on_the_output(sampler: Sampler) -> None:
    steps = list(sampler.run(embedding(2, 1), embedding(1, 2), [5, 6], steps=7, guidance_scale=3.0))
    assert [s.step for s in steps] == list(range(1, 8)) and {s.total for s in steps} == {7}
    assert steps[-1].sample.shape == (2, 4, 16, 16)
    assert all(float(s.x0.abs().max()) <= 1.0 for s in steps)


def test_each_image_depends_only_on_its_own_seed(sampler: Sampler) -> None:
    cond = embedding(1, 1)
    alone = list(sampler.run(cond, embedding(1, 2), [6], steps=4, guidance_scale=3.0))[-1].sample
    both = TextEmbedding(
        tokens=cond.tokens.repeat(2, 1, 1), mask=cond.mask.repeat(2, 1), pooled=cond.pooled.repeat(2, 1)
    )
    pair = list(sampler.run(both, embedding(1, 2), [5, 6], steps=4, guidance_scale=3.0))[-1].sample
    assert torch.allclose(pair[1], alone[0], atol=1e-5)


def test_img2img_runs_the_tail_of_the_schedule(sampler: Sampler) -> None:
    init = torch.zeros(1, 4, 16, 16)
    steps = list(sampler.run(embedding(1, 1), embedding(1, 2), [1], steps=10, guidance_scale=3.0, init=init,
                             strength=0.3))  # fmt: skip
    assert len(steps) == 3


def test_masked_sampling_keeps_the_known_region(sampler: Sampler) -> None:
    init = torch.rand(1, 4, 16, 16) * 2 - 1
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., :8] = 1.0  # repaint the left half
    out = list(sampler.run(embedding(1, 1), embedding(1, 2), [3], steps=6, guidance_scale=3.0, init=init,
                           mask=mask))[-1].sample  # fmt: skip
    assert torch.equal(out[..., 8:], init[..., 8:])
    assert not torch.allclose(out[..., :8], init[..., :8])


def test_reference_images_condition_the_guided_branch_only() -> None:
    """A retrieval-conditioned network (reference_images=2): the references feed the guided branch; without
    guidance (scale 0 = the unguided branch alone, which sees blank references) they change nothing."""
    cfg = EmbeddedModelConfig(**{**CFG.__dict__, "reference_images": 2})
    torch.manual_seed(0)
    unet = build_unet(cfg).eval()
    assert unet.config.in_channels == 4 * 3
    sampler = Sampler(unet, cfg)
    refs_a = torch.rand(1, 8, 16, 16) * 2 - 1
    refs_b = torch.rand(1, 8, 16, 16) * 2 - 1

    def final(refs: torch.Tensor | None, scale: float) -> torch.Tensor:
        steps = list(sampler.run(embedding(1, 1), embedding(1, 2), [3], 4, scale, references=refs))
        return steps[-1].sample

    assert not torch.allclose(final(refs_a, 3.0), final(refs_b, 3.0))
    assert torch.allclose(final(refs_a, 0.0), final(refs_b, 0.0))
    # No references given: blank ones (what the unguided branch sees), not an error.
    assert torch.allclose(final(None, 3.0), final(torch.full((1, 8, 16, 16), -1.0), 3.0))
