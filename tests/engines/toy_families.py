"""Toy pipelines of every family diffusers can build small on a CPU, saved into a Hugging Face hub cache layout.

Each builder returns a real diffusers pipeline (random weights, toy width) whose configs carry the signals
``engines/detection.py`` reads (FLUX ``guidance_embeds``, SD 2.x linear projections, ``v_prediction``, SD3.5
QK-norm ...). Tokenizers are made here: CLIP from ``tiny_pipelines.make_clip_tokenizer``, T5 as a sentencepiece
unigram over printable ASCII and Gemma as a byte-free BPE vocabulary, both through ``tokenizers``; nothing is
downloaded. :func:`save_to_hub_cache` writes ``hub/models--org--name/snapshots/<sha>/`` and ``refs/main`` the way
``huggingface_hub`` does, so the code under test finds it by hub id with ``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.engines.tiny_pipelines import build_tiny_sd, make_clip_tokenizer

__all__ = ["BUILDERS", "build_server_sd", "hub_cache", "save_to_hub_cache", "snapshot_dir"]

_ASCII = [chr(c) for c in range(33, 127)]


def _t5_tokenizer() -> Any:
    from transformers import T5Tokenizer

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -1.0)]
    pieces += [(s, -2.0) for s in _ASCII] + [("▁" + s, -1.5) for s in _ASCII]
    return T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=64)


def _gemma_tokenizer() -> Any:
    from transformers import GemmaTokenizer

    vocab = {t: i for i, t in enumerate(["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "▁", *_ASCII])}
    return GemmaTokenizer(vocab=vocab, merges=[], model_max_length=2048)


def _t5_encoder(vocab: int, width: int = 16) -> Any:
    from transformers import T5Config, T5EncoderModel

    config = T5Config(vocab_size=vocab, d_model=width, d_kv=8, d_ff=32, num_layers=1, num_heads=2,
                      relative_attention_num_buckets=8, relative_attention_max_distance=16)  # fmt: skip
    return T5EncoderModel(config)


def _clip(tokenizer: Any, width: int, *, projection: bool = False, projection_dim: int | None = None) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=width, intermediate_size=2 * width, num_attention_heads=2,
        num_hidden_layers=2, max_position_embeddings=tokenizer.model_max_length, projection_dim=projection_dim or width,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    return CLIPTextModelWithProjection(config) if projection else CLIPTextModel(config)


def _flat_vae(latent_channels: int) -> Any:
    """A one-level AutoencoderKL (no downsampling) as the transformer pipelines' fast tests use."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(block_out_channels=(4,), layers_per_block=1, latent_channels=latent_channels,
                         norm_num_groups=1, sample_size=32, use_quant_conv=False, use_post_quant_conv=False,
                         shift_factor=0.0609, scaling_factor=1.5035)  # fmt: skip


def build_sd2(workdir: Path, *, prediction_type: str = "epsilon") -> Any:
    """SD 2.x layout: the UNet's transformers use linear projections (SD 1.x: 1x1 convolutions)."""
    import torch
    from diffusers import EulerDiscreteScheduler, UNet2DConditionModel

    pipe = build_tiny_sd(workdir)
    torch.manual_seed(0)
    # Private keys dropped: diffusers' `_use_default_values` would reset use_linear_projection to its default.
    config = {k: v for k, v in pipe.unet.config.items() if not k.startswith("_")}
    pipe.unet = UNet2DConditionModel.from_config({**config, "use_linear_projection": True})
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config, prediction_type=prediction_type)
    return pipe


def build_sdxl(workdir: Path) -> Any:
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel

    tok = make_clip_tokenizer(workdir / "tok")
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=8, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
        addition_time_embed_dim=8, transformer_layers_per_block=(1, 1),
        projection_class_embeddings_input_dim=6 * 8 + 16, cross_attention_dim=32, norm_num_groups=4,
    )  # fmt: skip
    torch.manual_seed(0)
    vae = AutoencoderKL(block_out_channels=(8, 16), in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        norm_num_groups=4, sample_size=16)  # fmt: skip
    torch.manual_seed(0)
    te, te2 = _clip(tok, 16), _clip(tok, 16, projection=True)
    scheduler = EulerDiscreteScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                                       steps_offset=1, timestep_spacing="leading")  # fmt: skip
    return StableDiffusionXLPipeline(vae=vae, text_encoder=te, text_encoder_2=te2, tokenizer=tok, tokenizer_2=tok,
                                     unet=unet, scheduler=scheduler)  # fmt: skip


def build_sd3(workdir: Path, **transformer: Any) -> Any:
    """SD3 medium layout; ``qk_norm="rms_norm"`` makes it 3.5 large, ``dual_attention_layers=(0,)`` 3.5 medium."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline

    tok, t5tok = make_clip_tokenizer(workdir / "tok"), _t5_tokenizer()
    torch.manual_seed(0)
    model = SD3Transformer2DModel(sample_size=32, patch_size=1, in_channels=4, num_layers=1, attention_head_dim=8,
                                  num_attention_heads=2, caption_projection_dim=16, joint_attention_dim=16,
                                  pooled_projection_dim=32, out_channels=4, **transformer)  # fmt: skip
    torch.manual_seed(0)
    te, te2 = _clip(tok, 8, projection=True), _clip(tok, 8, projection=True, projection_dim=24)
    return StableDiffusion3Pipeline(
        transformer=model, scheduler=FlowMatchEulerDiscreteScheduler(), vae=_flat_vae(4), text_encoder=te,
        tokenizer=tok, text_encoder_2=te2, tokenizer_2=tok, text_encoder_3=_t5_encoder(len(t5tok)),
        tokenizer_3=t5tok,
    )  # fmt: skip


def build_flux(workdir: Path, *, guidance_embeds: bool) -> Any:
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

    tok, t5tok = make_clip_tokenizer(workdir / "tok"), _t5_tokenizer()
    torch.manual_seed(0)
    model = FluxTransformer2DModel(patch_size=1, in_channels=4, num_layers=1, num_single_layers=1,
                                   attention_head_dim=16, num_attention_heads=2, joint_attention_dim=16,
                                   pooled_projection_dim=16, axes_dims_rope=[4, 4, 8],
                                   guidance_embeds=guidance_embeds)  # fmt: skip
    torch.manual_seed(0)
    return FluxPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=_flat_vae(1), text_encoder=_clip(tok, 16),
                        tokenizer=tok, text_encoder_2=_t5_encoder(len(t5tok)), tokenizer_2=t5tok,
                        transformer=model)  # fmt: skip


def build_pixart_sigma(workdir: Path) -> Any:
    import torch
    from diffusers import DDIMScheduler, PixArtSigmaPipeline, PixArtTransformer2DModel

    t5tok = _t5_tokenizer()
    torch.manual_seed(0)
    model = PixArtTransformer2DModel(sample_size=8, num_layers=1, patch_size=2, attention_head_dim=8,
                                     num_attention_heads=2, caption_channels=16, in_channels=4, cross_attention_dim=16,
                                     out_channels=8, attention_bias=True, activation_fn="gelu-approximate",
                                     num_embeds_ada_norm=1000, norm_type="ada_norm_single",
                                     norm_elementwise_affine=False, norm_eps=1e-6)  # fmt: skip
    torch.manual_seed(0)
    return PixArtSigmaPipeline(tokenizer=t5tok, text_encoder=_t5_encoder(len(t5tok)), vae=_flat_vae(4),
                               transformer=model, scheduler=DDIMScheduler())  # fmt: skip


def build_sana(workdir: Path) -> Any:
    import torch
    from diffusers import AutoencoderDC, FlowMatchEulerDiscreteScheduler, SanaPipeline, SanaTransformer2DModel
    from transformers import Gemma2Config, Gemma2Model

    tok = _gemma_tokenizer()
    torch.manual_seed(0)
    model = SanaTransformer2DModel(patch_size=1, in_channels=4, out_channels=4, num_layers=1, num_attention_heads=2,
                                   attention_head_dim=4, num_cross_attention_heads=2, cross_attention_head_dim=4,
                                   cross_attention_dim=8, caption_channels=8, sample_size=32)  # fmt: skip
    torch.manual_seed(0)
    vae = AutoencoderDC(in_channels=3, latent_channels=4, attention_head_dim=2,
                        encoder_block_types=("ResBlock", "EfficientViTBlock"),
                        decoder_block_types=("ResBlock", "EfficientViTBlock"), encoder_block_out_channels=(8, 8),
                        decoder_block_out_channels=(8, 8), encoder_qkv_multiscales=((), (5,)),
                        decoder_qkv_multiscales=((), (5,)), encoder_layers_per_block=(1, 1),
                        decoder_layers_per_block=[1, 1], downsample_block_type="conv",
                        upsample_block_type="interpolate", decoder_norm_types="rms_norm", decoder_act_fns="silu",
                        scaling_factor=0.41407)  # fmt: skip
    torch.manual_seed(0)
    text = Gemma2Model(Gemma2Config(head_dim=4, hidden_size=8, intermediate_size=16, max_position_embeddings=4096,
                                    num_attention_heads=2, num_hidden_layers=1, num_key_value_heads=2,
                                    vocab_size=len(tok), attn_implementation="eager"))  # fmt: skip
    return SanaPipeline(tokenizer=tok, text_encoder=text, vae=vae, transformer=model,
                        scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0))  # fmt: skip


# hub id -> (builder, the family detection must find). Names matter: distilled variants are told by name.
BUILDERS: dict[str, tuple[Callable[[Path], Any], str]] = {
    "toy/stable-diffusion-v1-5": (build_tiny_sd, "sd1"),
    "toy/stable-diffusion-2-1-base": (build_sd2, "sd2"),
    "toy/stable-diffusion-2-1": (lambda w: build_sd2(w, prediction_type="v_prediction"), "sd2-v"),
    "toy/sd-turbo": (build_sd2, "sd-turbo"),
    "toy/sdxs-512-0.9": (build_tiny_sd, "sdxs"),
    "toy/stable-diffusion-xl-base-1.0": (build_sdxl, "sdxl"),
    "toy/sdxl-turbo": (build_sdxl, "sdxl-turbo"),
    "toy/sdxl-lightning-4step": (build_sdxl, "sdxl-lightning"),
    "toy/lcm-sdxl": (build_sdxl, "sdxl-lcm"),
    "toy/stable-diffusion-3-medium": (build_sd3, "sd3"),
    "toy/stable-diffusion-3.5-large": (lambda w: build_sd3(w, qk_norm="rms_norm"), "sd3.5-large"),
    "toy/stable-diffusion-3.5-medium": (
        lambda w: build_sd3(w, qk_norm="rms_norm", dual_attention_layers=(0,)), "sd3.5-medium"),
    "toy/stable-diffusion-3.5-large-turbo": (lambda w: build_sd3(w, qk_norm="rms_norm"), "sd3.5-large-turbo"),
    "toy/FLUX.1-dev": (lambda w: build_flux(w, guidance_embeds=True), "flux-dev"),
    "toy/FLUX.1-schnell": (lambda w: build_flux(w, guidance_embeds=False), "flux-schnell"),
    "toy/PixArt-Sigma-XL-2-1024-MS": (build_pixart_sigma, "pixart-sigma"),
    "toy/Sana_1600M_1024px_diffusers": (build_sana, "sana"),
}  # fmt: skip


def snapshot_dir(hub_cache: Path, repo_id: str) -> Path:
    """Where ``huggingface_hub`` keeps ``repo_id``'s main revision in ``hub_cache`` (``$HF_HOME/hub``)."""
    org, name = repo_id.split("/")
    repo = hub_cache / f"models--{org}--{name}"
    commit = hashlib.sha1(repo_id.encode()).hexdigest()  # any 40-hex commit id; fixed per repo
    return repo / "snapshots" / commit


def save_to_hub_cache(pipe: Any, hub_cache: Path, repo_id: str) -> Path:
    """Save ``pipe`` (safetensors) as the cached main revision of ``repo_id``; returns the snapshot directory."""
    snapshot = snapshot_dir(hub_cache, repo_id)
    pipe.save_pretrained(str(snapshot), safe_serialization=True)
    refs = snapshot.parents[1] / "refs"
    refs.mkdir(parents=True, exist_ok=True)
    (refs / "main").write_text(snapshot.name)
    return snapshot


def build_server_sd(workdir: Path) -> Any:
    """A toy SD pipeline that draws 1024x1024 in about a second: an 8x VAE without mid-block attention and a UNet
    that attends only at 1/16 of the image size (the OpenAI profiles ask for 1024 px and up)."""
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel

    tok = make_clip_tokenizer(workdir / "tok")
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(4, 8), layers_per_block=1, sample_size=64, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16, attention_head_dim=4, norm_num_groups=4,
    )  # fmt: skip
    torch.manual_seed(0)
    vae = AutoencoderKL(block_out_channels=(4, 4, 4, 4), layers_per_block=1, latent_channels=4, norm_num_groups=4,
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                        mid_block_add_attention=False, sample_size=64)  # fmt: skip
    scheduler = EulerDiscreteScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                                       steps_offset=1, timestep_spacing="trailing")  # fmt: skip
    return StableDiffusionPipeline(unet=unet, vae=vae, text_encoder=_clip(tok, 16), tokenizer=tok,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)  # fmt: skip


@contextmanager
def hub_cache(hf_home: Path) -> Iterator[Path]:
    """Point huggingface_hub at ``hf_home`` while active (it reads HF_HOME once, at import); yields ``hub/``."""
    import pytest
    from huggingface_hub import constants

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HOME", str(hf_home))
        mp.setattr(constants, "HF_HOME", str(hf_home))
        mp.setattr(constants, "HF_HUB_CACHE", str(hf_home / "hub"))
        yield hf_home / "hub"
