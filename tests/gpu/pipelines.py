"""The toy pipeline the GPU tests run: Stable Diffusion 2.x / SD-Turbo's architecture at reduced width.

Random weights, nothing downloaded. Wide enough that the UNet, the VAE and the text encoder run real CUDA kernels
(cuDNN convolutions, tensor-core matmuls, fused attention) at real resolutions, small enough to build on a CPU in
seconds and to run a 1024x1024 image on a GPU in well under a second. Its shape follows
``benchmarks/bench_serving.build_sd_turbo_small``; it is copied here so that the GPU tests do not change when the
benchmark's model does.
"""

from __future__ import annotations

from pathlib import Path

from tests.engines.tiny_pipelines import make_clip_tokenizer

__all__ = ["save_sd_turbo_small"]


def save_sd_turbo_small(directory: Path) -> Path:
    """Save the pipeline as a diffusers directory (safetensors) under ``directory``; returns its path."""
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = make_clip_tokenizer(directory / "tok")
    tokenizer.model_max_length = 77
    torch.manual_seed(0)
    unet = UNet2DConditionModel(  # SD 2.x layout at 1/5 of its width (320, 640, 1280, 1280)
        sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
        block_out_channels=(64, 128, 256, 256), attention_head_dim=(1, 2, 4, 4), cross_attention_dim=256,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        use_linear_projection=True, norm_num_groups=32,
    )  # fmt: skip
    torch.manual_seed(0)
    vae = AutoencoderKL(  # SD's VAE layout at 1/4 of its width (128, 256, 512, 512)
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, sample_size=512,
        block_out_channels=(32, 64, 128, 128),
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    )  # fmt: skip
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer), hidden_size=256, intermediate_size=1024, num_attention_heads=4,
            num_hidden_layers=6, max_position_embeddings=77, bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        )
    )  # fmt: skip
    # SD-Turbo's scheduler: Euler over trailing timesteps, so 1-4 steps make a whole schedule. steps_offset=1 as in
    # its config: diffusers warns (a FutureWarning, an error in this suite) about a pipeline built with 0.
    scheduler = EulerDiscreteScheduler(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, timestep_spacing="trailing", steps_offset=1
    )
    pipe = StableDiffusionPipeline(
        unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )  # fmt: skip
    out = directory / "sd-turbo-small"
    pipe.save_pretrained(str(out), safe_serialization=True)
    return out
