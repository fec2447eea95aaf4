"""Write a diffusers Stable Diffusion pipeline as one original-layout (LDM / A1111-style) ``.safetensors`` file.

Test support only: it is the inverse of diffusers' single-file converter (``convert_ldm_unet_checkpoint``,
``convert_ldm_vae_checkpoint``, ``convert_ldm_clip_checkpoint``) for the SD 1.x layout, so the tests can load a
real single-file checkpoint without downloading one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["save_ldm_checkpoint"]

_UNET_RESNET = (
    ("norm1", "in_layers.0"),
    ("conv1", "in_layers.2"),
    ("norm2", "out_layers.0"),
    ("conv2", "out_layers.3"),
    ("time_emb_proj", "emb_layers.1"),
    ("conv_shortcut", "skip_connection"),
)
_VAE_ATTN = (
    ("group_norm", "norm"),
    ("to_q", "q"),
    ("to_k", "k"),
    ("to_v", "v"),
    ("to_out.0", "proj_out"),
)


def _rename(rest: str, table: tuple[tuple[str, str], ...]) -> str:
    for new, old in table:
        if rest.startswith(new + "."):
            return old + rest[len(new) :]
    return rest


def _unet(state: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    per = config["layers_per_block"]
    n_down = len(config["down_block_types"])
    out: dict[str, Any] = {}
    fixed = {
        "time_embedding.linear_1": "time_embed.0",
        "time_embedding.linear_2": "time_embed.2",
        "conv_in": "input_blocks.0.0",
        "conv_norm_out": "out.0",
        "conv_out": "out.2",
    }
    for key, value in state.items():
        parts = key.split(".")
        module = ".".join(parts[:-1])  # everything but the parameter name
        if module in fixed:
            out[f"{fixed[module]}.{parts[-1]}"] = value
        elif parts[0] == "down_blocks":
            b, kind, j = int(parts[1]), parts[2], int(parts[3])
            rest = ".".join(parts[4:])
            if kind == "resnets":
                out[f"input_blocks.{1 + b * (per + 1) + j}.0.{_rename(rest, _UNET_RESNET)}"] = value
            elif kind == "attentions":
                out[f"input_blocks.{1 + b * (per + 1) + j}.1.{rest}"] = value
            else:  # downsamplers.0.conv.*
                out[f"input_blocks.{1 + b * (per + 1) + per}.0.op.{parts[-1]}"] = value
        elif parts[0] == "mid_block":
            kind, j, rest = parts[1], int(parts[2]), ".".join(parts[3:])
            if kind == "resnets":
                out[f"middle_block.{2 * j}.{_rename(rest, _UNET_RESNET)}"] = value
            else:
                out[f"middle_block.1.{rest}"] = value
        elif parts[0] == "up_blocks":
            b, kind, j = int(parts[1]), parts[2], int(parts[3])
            rest = ".".join(parts[4:])
            if kind == "resnets":
                out[f"output_blocks.{b * (per + 1) + j}.0.{_rename(rest, _UNET_RESNET)}"] = value
            elif kind == "attentions":
                out[f"output_blocks.{b * (per + 1) + j}.1.{rest}"] = value
            else:  # upsamplers.0.conv.*: after the attention when the block has one
                has_attn = "CrossAttn" in config["up_block_types"][b]
                out[f"output_blocks.{b * (per + 1) + per}.{2 if has_attn else 1}.conv.{parts[-1]}"] = value
        else:
            raise KeyError(f"unmapped UNet key {key}")
    assert n_down == len(config["up_block_types"])
    return {f"model.diffusion_model.{k}": v for k, v in out.items()}


def _vae(state: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    n_up = len(config["up_block_types"])
    out: dict[str, Any] = {}
    for key, value in state.items():
        parts = key.split(".")
        side = parts[0]
        if side in ("quant_conv", "post_quant_conv") or parts[1] in ("conv_in", "conv_out"):
            out[key] = value
        elif parts[1] == "conv_norm_out":
            out[f"{side}.norm_out.{parts[-1]}"] = value
        elif parts[1] in ("down_blocks", "up_blocks"):
            i, kind = int(parts[2]), parts[3]
            block = i if parts[1] == "down_blocks" else n_up - 1 - i
            name = "down" if parts[1] == "down_blocks" else "up"
            if kind == "resnets":
                rest = ".".join(parts[5:]).replace("conv_shortcut", "nin_shortcut")
                out[f"{side}.{name}.{block}.block.{parts[4]}.{rest}"] = value
            else:  # downsamplers/upsamplers.0.conv.*
                sampler = "downsample" if name == "down" else "upsample"
                out[f"{side}.{name}.{block}.{sampler}.conv.{parts[-1]}"] = value
        elif parts[1] == "mid_block":
            kind, j, rest = parts[2], int(parts[3]), ".".join(parts[4:])
            if kind == "resnets":
                out[f"{side}.mid.block_{j + 1}.{rest}"] = value
            else:  # attention: linear in diffusers, 1x1 conv in LDM
                ldm = _rename(rest, _VAE_ATTN)
                out[f"{side}.mid.attn_1.{ldm}"] = value[:, :, None, None] if value.dim() == 2 else value
        else:
            raise KeyError(f"unmapped VAE key {key}")
    return {f"first_stage_model.{k}": v for k, v in out.items()}


def save_ldm_checkpoint(pipe: Any, path: Path) -> Path:
    """``pipe``: a StableDiffusionPipeline (SD 1.x layout). Writes and returns ``path`` (.safetensors)."""
    from safetensors.torch import save_file

    state: dict[str, Any] = {}
    state.update(_unet(pipe.unet.state_dict(), dict(pipe.unet.config)))
    state.update(_vae(pipe.vae.state_dict(), dict(pipe.vae.config)))
    for key, value in pipe.text_encoder.state_dict().items():
        # Original checkpoints nest CLIP under "text_model." (transformers 5 drops it from the module's own keys).
        state[f"cond_stage_model.transformer.text_model.{key.removeprefix('text_model.')}"] = value
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path
