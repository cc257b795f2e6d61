"""Tiny transformers ViT towers on one 8x8 grid at 64 px: CLIP, SigLIP, SigLIP2 (NaFlex) and DINOv2 (with and
without registers), so any two fuse (Prismatic's DINOv2 + SigLIP pairing)."""

from __future__ import annotations

from pathlib import Path

from transformers import (
    AutoModel,
    BitImageProcessor,
    CLIPImageProcessor,
    CLIPVisionConfig,
    Dinov2Config,
    Dinov2WithRegistersConfig,
    PreTrainedConfig,
    Siglip2ImageProcessor,
    Siglip2VisionConfig,
    SiglipImageProcessor,
    SiglipVisionConfig,
)
from transformers.image_utils import (
    IMAGENET_DEFAULT_MEAN,
    IMAGENET_DEFAULT_STD,
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
)

from vlm.tiny.backbone import save_model, tiny_backbone

VISION_SIZES = dict(
    image_size=64,
    patch_size=8,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=3,
    num_attention_heads=4,
)


@tiny_backbone("tiny-clip")
def tiny_clip(out: Path) -> None:
    save_model(CLIPVisionConfig(**VISION_SIZES), AutoModel, out)
    CLIPImageProcessor(
        size={"shortest_edge": 64},
        crop_size={"height": 64, "width": 64},
        image_mean=OPENAI_CLIP_MEAN,
        image_std=OPENAI_CLIP_STD,
    ).save_pretrained(out)


@tiny_backbone("tiny-siglip")
def tiny_siglip(out: Path) -> None:
    save_model(SiglipVisionConfig(**VISION_SIZES), AutoModel, out)
    SiglipImageProcessor(
        size={"height": 64, "width": 64}, image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5]
    ).save_pretrained(out)


DINOV2_SIZES = {k: v for k, v in VISION_SIZES.items() if k != "intermediate_size"}  # DINOv2 takes mlp_ratio


def _save_dinov2(out: Path, config: PreTrainedConfig) -> None:
    save_model(config, AutoModel, out)
    BitImageProcessor(
        size={"shortest_edge": 64}, crop_size={"height": 64, "width": 64},
        image_mean=IMAGENET_DEFAULT_MEAN, image_std=IMAGENET_DEFAULT_STD,
    ).save_pretrained(out)


@tiny_backbone("tiny-dinov2")
def tiny_dinov2(out: Path) -> None:
    """DINOv2 on the same 8x8 grid at 64 px as tiny-siglip, so the two fuse (Prismatic's pairing)."""
    _save_dinov2(out, Dinov2Config(**DINOV2_SIZES, mlp_ratio=2))


@tiny_backbone("tiny-dinov2-registers")
def tiny_dinov2_registers(out: Path) -> None:
    """tiny-dinov2 with 4 register tokens (prefix: CLS + 4)."""
    _save_dinov2(out, Dinov2WithRegistersConfig(**DINOV2_SIZES, mlp_ratio=2, num_register_tokens=4))


@tiny_backbone("tiny-siglip2")
def tiny_siglip2(out: Path) -> None:
    """A SigLIP2 NaFlex tower with tiny-siglip's sizes; ``image_size`` (which NaFlex configs lack) is the
    fixed size the VLM feeds it."""
    save_model(Siglip2VisionConfig(**VISION_SIZES, num_patches=64), AutoModel, out)
    Siglip2ImageProcessor(patch_size=8, max_num_patches=64).save_pretrained(out)
