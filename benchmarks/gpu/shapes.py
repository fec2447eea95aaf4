"""The ladder's model shapes: SD-Turbo, SDXL base 1.0 and FLUX.1-schnell as their real diffusers/transformers
classes at true size, with random weights, from the published configs written out below (nothing is downloaded).

Random weights time like the trained checkpoints: the work of a forward pass depends on the shapes, not on the
values (fp16 overflow aside: random FLUX and T5 weights in fp16 may give NaNs, which cost the same to compute).
Each public builder ``name(*, dtype, device)`` is an ImageForge ``factory`` target
(``"benchmarks.gpu.shapes:sdxl"``); ``*_toy`` are the same classes and block layouts at toy width for the CPU
test, and ``flux_schnell_depth_K`` (any K) is FLUX with K double-stream and 2K single-stream blocks.

Config values are from the models' ``config.json`` files on the Hugging Face hub as I know them (not fetched
here); where a value is uncertain, or does not change the work done, the comment says so.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["FLUX_FULL_DEPTH", "SHAPES", "Shape", "flux_schnell", "flux_schnell_toy", "get_shape", "sd_turbo",
           "sd_turbo_toy", "sdxl", "sdxl_toy"]  # fmt: skip

SHAPES = ("sd-turbo", "sdxl", "flux-schnell")
FLUX_FULL_DEPTH = 19  # FLUX.1's double-stream blocks; it has twice as many (38) single-stream blocks
CLIP_VOCAB = 49408
T5_VOCAB = 32128

# -- published configs -------------------------------------------------------------------------------------------

# stabilityai/sd-turbo unet/config.json (the SD 2.1 layout). diffusers' `attention_head_dim` here is the number
# of heads per block (64 channels each), as in SD 2.x's own config. sd-turbo's `upcast_attention` is not certain
# to me; it does not change the work under diffusers' default SDPA processor, so it is left at the default.
SD2_UNET: dict[str, Any] = {
    "sample_size": 64, "in_channels": 4, "out_channels": 4, "layers_per_block": 2,
    "block_out_channels": (320, 640, 1280, 1280), "attention_head_dim": (5, 10, 20, 20), "cross_attention_dim": 1024,
    "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    "use_linear_projection": True, "norm_num_groups": 32,
}  # fmt: skip
SD2_UNET_TOY = {**SD2_UNET, "sample_size": 8, "layers_per_block": 1, "block_out_channels": (8, 16, 16, 16),
                "attention_head_dim": (1, 2, 2, 2), "cross_attention_dim": 16, "norm_num_groups": 4}  # fmt: skip

# stabilityai/stable-diffusion-xl-base-1.0 unet/config.json. The mid block takes the last entry of
# transformer_layers_per_block (10 transformer layers), as diffusers builds it from this config.
SDXL_UNET: dict[str, Any] = {
    "sample_size": 128, "in_channels": 4, "out_channels": 4, "layers_per_block": 2,
    "block_out_channels": (320, 640, 1280), "attention_head_dim": (5, 10, 20),
    "transformer_layers_per_block": (1, 2, 10),
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    "cross_attention_dim": 2048, "addition_embed_type": "text_time", "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 2816, "use_linear_projection": True, "norm_num_groups": 32,
}  # fmt: skip
# Toy: cross attention over both toy text encoders (16 + 16); time ids 6 x 8 plus the pooled 16-wide embedding.
SDXL_UNET_TOY = {**SDXL_UNET, "sample_size": 8, "layers_per_block": 1, "block_out_channels": (8, 16, 16),
                 "attention_head_dim": (1, 2, 2), "transformer_layers_per_block": (1, 1, 2), "cross_attention_dim": 32,
                 "addition_time_embed_dim": 8, "projection_class_embeddings_input_dim": 6 * 8 + 16,
                 "norm_num_groups": 4}  # fmt: skip

# black-forest-labs/FLUX.1-schnell transformer/config.json.
FLUX_TRANSFORMER: dict[str, Any] = {
    "patch_size": 1, "in_channels": 64, "num_layers": 19, "num_single_layers": 38, "attention_head_dim": 128,
    "num_attention_heads": 24, "joint_attention_dim": 4096, "pooled_projection_dim": 768, "guidance_embeds": False,
    "axes_dims_rope": (16, 56, 56),
}  # fmt: skip
FLUX_TRANSFORMER_TOY = {**FLUX_TRANSFORMER, "num_layers": 1, "num_single_layers": 2, "attention_head_dim": 16,
                        "num_attention_heads": 2, "joint_attention_dim": 16, "pooled_projection_dim": 16,
                        "axes_dims_rope": (4, 6, 6)}  # fmt: skip

# The SD VAE (sd-turbo, SDXL); FLUX's has 16 latent channels, a shift, and no quant convolutions.
# `sample_size` only sets the tile size of tiled decoding, which the ladder does not use.
SD_VAE: dict[str, Any] = {
    "in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 2,
    "block_out_channels": (128, 256, 512, 512), "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4, "norm_num_groups": 32, "sample_size": 512, "scaling_factor": 0.18215,
}  # fmt: skip
SDXL_VAE = {**SD_VAE, "sample_size": 1024, "scaling_factor": 0.13025, "force_upcast": True}
FLUX_VAE = {**SD_VAE, "latent_channels": 16, "sample_size": 1024, "scaling_factor": 0.3611, "shift_factor": 0.1159,
            "use_quant_conv": False, "use_post_quant_conv": False, "force_upcast": True}  # fmt: skip
_VAE_TOY = {"layers_per_block": 1, "block_out_channels": (8, 8, 8, 8), "norm_num_groups": 4}  # still 8x down

# Text towers (transformers CLIPTextConfig / T5Config fields). SD 2.x's OpenCLIP ViT-H tower is configured with
# 23 of its 24 layers (SD 2 reads the penultimate layer); SDXL runs all 32 bigG layers and reads the penultimate.
OPENCLIP_H_TEXT = {"hidden_size": 1024, "intermediate_size": 4096, "num_attention_heads": 16,
                   "num_hidden_layers": 23, "hidden_act": "gelu", "projection_dim": 512}  # fmt: skip
CLIP_L_TEXT = {"hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12, "num_hidden_layers": 12,
               "hidden_act": "quick_gelu", "projection_dim": 768}  # fmt: skip
OPENCLIP_BIGG_TEXT = {"hidden_size": 1280, "intermediate_size": 5120, "num_attention_heads": 20,
                      "num_hidden_layers": 32, "hidden_act": "gelu", "projection_dim": 1280}  # fmt: skip
TOY_TEXT = {"hidden_size": 16, "intermediate_size": 32, "num_attention_heads": 2, "num_hidden_layers": 2,
            "hidden_act": "gelu", "projection_dim": 16}  # fmt: skip
# google/t5-v1_1-xxl, as FLUX's text_encoder_2/config.json gives it.
T5_XXL = {"vocab_size": T5_VOCAB, "d_model": 4096, "d_kv": 64, "d_ff": 10240, "num_layers": 24, "num_heads": 64,
          "relative_attention_num_buckets": 32, "relative_attention_max_distance": 128,
          "feed_forward_proj": "gated-gelu", "layer_norm_epsilon": 1e-6, "tie_word_embeddings": False}  # fmt: skip
T5_TOY = {**T5_XXL, "d_model": 16, "d_kv": 8, "d_ff": 32, "num_layers": 1, "num_heads": 2,
          "relative_attention_num_buckets": 8, "relative_attention_max_distance": 16}  # fmt: skip

# Scheduler configs: SD-Turbo and SDXL use Euler over SD's scaled-linear betas (SD-Turbo with trailing
# timesteps, so one step starts from pure noise); schnell's flow-matching Euler has no resolution shift.
_SD_BETAS = {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012, "num_train_timesteps": 1000}
SD_TURBO_SCHEDULER = {**_SD_BETAS, "timestep_spacing": "trailing", "steps_offset": 1, "prediction_type": "epsilon"}
SDXL_SCHEDULER = {**_SD_BETAS, "timestep_spacing": "leading", "steps_offset": 1, "prediction_type": "epsilon",
                  "interpolation_type": "linear", "use_karras_sigmas": False}  # fmt: skip
FLUX_SCHNELL_SCHEDULER = {"num_train_timesteps": 1000, "shift": 1.0, "use_dynamic_shifting": False}


# -- building ----------------------------------------------------------------------------------------------------


@contextmanager
def _materialise(dtype: Any, device: str) -> Iterator[None]:
    """Create parameters directly on ``device`` in ``dtype``, seeded: initialising a 12B-parameter model in fp32 on
    the CPU and then moving it would take minutes."""
    import torch

    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            torch.manual_seed(0)  # the same weights in every build, so arms draw the same images
            yield
    finally:
        torch.set_default_dtype(previous)


def _clip_tokenizer() -> Any:
    """CLIP's byte-level BPE with no merges (tests/engines/tiny_pipelines), padded to CLIP's 77 positions. Its 514
    ids are a corner of the 49408-row embedding table, which costs the same per token."""
    from tests.engines.tiny_pipelines import make_clip_tokenizer

    with tempfile.TemporaryDirectory(prefix="ladder-tokenizer-") as tmp:
        tok = make_clip_tokenizer(Path(tmp))  # the vocabulary is read into memory here
    tok.model_max_length = 77
    return tok


def _t5_tokenizer() -> Any:
    from tests.engines.toy_families import _t5_tokenizer as toy_t5

    tok = toy_t5()
    tok.model_max_length = 512  # T5's; FLUX pads its prompts to max_sequence_length (256 for schnell)
    return tok


def _clip_text(tok: Any, config: dict[str, Any], *, vocab: int, projection: bool = False) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    cfg = CLIPTextConfig(vocab_size=vocab, max_position_embeddings=77, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, **config)  # fmt: skip
    return CLIPTextModelWithProjection(cfg) if projection else CLIPTextModel(cfg)


def _finish(pipe: Any, dtype: Any, device: str) -> Any:
    import torch

    pipe.set_progress_bar_config(disable=True)
    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module):
            # nn.Module's own `to`: diffusers' override logs a float32-modules warning on every cast, even with
            # none to keep (0.42).
            torch.nn.Module.to(component, device=device, dtype=dtype)
    return pipe


def _sd_turbo(dtype: Any, device: str, *, toy: bool) -> Any:
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel

    tok = _clip_tokenizer()
    with _materialise(dtype, device):
        unet = UNet2DConditionModel(**(SD2_UNET_TOY if toy else SD2_UNET))
        vae = AutoencoderKL(**({**SD_VAE, **_VAE_TOY} if toy else SD_VAE))
        text = _clip_text(tok, TOY_TEXT if toy else OPENCLIP_H_TEXT, vocab=len(tok) if toy else CLIP_VOCAB)
    pipe = StableDiffusionPipeline(
        unet=unet, vae=vae, text_encoder=text, tokenizer=tok, scheduler=EulerDiscreteScheduler(**SD_TURBO_SCHEDULER),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )  # fmt: skip
    return _finish(pipe, dtype, device)


def _sdxl(dtype: Any, device: str, *, toy: bool) -> Any:
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel

    tok = _clip_tokenizer()
    vocab = len(tok) if toy else CLIP_VOCAB
    with _materialise(dtype, device):
        unet = UNet2DConditionModel(**(SDXL_UNET_TOY if toy else SDXL_UNET))
        vae = AutoencoderKL(**({**SDXL_VAE, **_VAE_TOY} if toy else SDXL_VAE))
        text = _clip_text(tok, TOY_TEXT if toy else CLIP_L_TEXT, vocab=vocab)
        text_2 = _clip_text(tok, TOY_TEXT if toy else OPENCLIP_BIGG_TEXT, vocab=vocab, projection=True)
    # add_watermarker=False: diffusers watermarks SDXL output only when invisible-watermark is installed (it is
    # not in ImageForge's environment), and that CPU post-process is no part of the model's work.
    pipe = StableDiffusionXLPipeline(
        vae=vae, text_encoder=text, text_encoder_2=text_2, tokenizer=tok, tokenizer_2=tok, unet=unet,
        scheduler=EulerDiscreteScheduler(**SDXL_SCHEDULER), add_watermarker=False,
    )  # fmt: skip
    return _finish(pipe, dtype, device)


def _flux_schnell(dtype: Any, device: str, *, toy: bool, depth: int = FLUX_FULL_DEPTH) -> Any:
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import T5Config, T5EncoderModel

    tok, t5_tok = _clip_tokenizer(), _t5_tokenizer()
    transformer = dict(FLUX_TRANSFORMER_TOY if toy else FLUX_TRANSFORMER)
    if not toy and depth < FLUX_FULL_DEPTH:
        transformer |= {"num_layers": depth, "num_single_layers": 2 * depth}
    with _materialise(dtype, device):
        model = FluxTransformer2DModel(**transformer)
        vae = AutoencoderKL(**({**FLUX_VAE, **_VAE_TOY} if toy else FLUX_VAE))
        text = _clip_text(tok, TOY_TEXT if toy else CLIP_L_TEXT, vocab=len(tok) if toy else CLIP_VOCAB)
        t5 = T5EncoderModel(T5Config(**({**T5_TOY, "vocab_size": len(t5_tok)} if toy else T5_XXL)))
    pipe = FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(**FLUX_SCHNELL_SCHEDULER), vae=vae, text_encoder=text,
        tokenizer=tok, text_encoder_2=t5, tokenizer_2=t5_tok, transformer=model,
    )  # fmt: skip
    return _finish(pipe, dtype, device)


def sd_turbo(*, dtype: Any, device: str) -> Any:
    return _sd_turbo(dtype, device, toy=False)


def sd_turbo_toy(*, dtype: Any, device: str) -> Any:
    return _sd_turbo(dtype, device, toy=True)


def sdxl(*, dtype: Any, device: str) -> Any:
    return _sdxl(dtype, device, toy=False)


def sdxl_toy(*, dtype: Any, device: str) -> Any:
    return _sdxl(dtype, device, toy=True)


def flux_schnell(*, dtype: Any, device: str) -> Any:
    return _flux_schnell(dtype, device, toy=False)


def flux_schnell_toy(*, dtype: Any, device: str) -> Any:
    return _flux_schnell(dtype, device, toy=True)


_DEPTH = re.compile(r"flux_schnell_depth_(\d+)")


def __getattr__(name: str) -> Callable[..., Any]:
    """``flux_schnell_depth_K``: a factory target per depth, so a catalogue names the depth it serves."""
    match = _DEPTH.fullmatch(name)
    if match is None or int(match.group(1)) < 1:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    depth = int(match.group(1))

    def build(*, dtype: Any, device: str) -> Any:
        return _flux_schnell(dtype, device, toy=False, depth=depth)

    build.__name__ = name
    return build


# -- what the ladder runs ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    name: str
    factory: str  # "module:callable", the engine's `factory` option
    size: int  # square images, pixels a side
    steps: int
    guidance_scale: float
    stock_dtype: str  # what the model card's own snippet uses on CUDA
    call_options: dict[str, Any] = field(default_factory=dict)  # extra pipeline-call arguments
    note: str = ""  # how the built model differs from the real one, said in every printout

    def build(self, *, dtype: Any, device: str) -> Any:
        from imageforge.engines.diffusers_speed import load_factory

        return load_factory(self.factory)(dtype=dtype, device=device)


def get_shape(name: str, *, toy: bool = False, flux_depth: int = FLUX_FULL_DEPTH) -> Shape:
    """The ladder's settings for ``name``: the model's native resolution, step count and guidance."""
    suffix = "_toy" if toy else ""
    toy_note = "toy width (same classes and block layout), random weights" if toy else "random weights"
    if name == "sd-turbo":
        return Shape(name, f"{__name__}:sd_turbo{suffix}", 64 if toy else 512, 1, 0.0, "float16", note=toy_note)
    if name == "sdxl":
        return Shape(name, f"{__name__}:sdxl{suffix}", 64 if toy else 1024, 2 if toy else 30, 5.0, "float16",
                     note=toy_note)  # fmt: skip
    if name == "flux-schnell":
        target, note = f"flux_schnell{suffix}", toy_note
        if not toy and flux_depth < FLUX_FULL_DEPTH:
            target = f"flux_schnell_depth_{flux_depth}"
            note = (f"REDUCED DEPTH: {flux_depth} double + {2 * flux_depth} single blocks "
                    f"(FLUX.1 has {FLUX_FULL_DEPTH} + {2 * FLUX_FULL_DEPTH}), random weights")  # fmt: skip
        # bf16 as the model card has it: T5 overflows in fp16.
        return Shape(name, f"{__name__}:{target}", 64 if toy else 1024, 2 if toy else 4, 0.0, "bfloat16",
                     call_options={"max_sequence_length": 256}, note=note)  # fmt: skip
    raise ValueError(f"unknown shape {name!r}; known: {', '.join(SHAPES)}")
