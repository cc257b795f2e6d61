"""Vision towers of the papers' presets at their published shapes (CLIP, SigLIP, DINOv2, ConvNeXt)."""

from __future__ import annotations

from transformers import (
    BitImageProcessor,
    CLIPImageProcessor,
    CLIPVisionConfig,
    ConvNextConfig,
    Dinov2Config,
    Dinov2WithRegistersConfig,
    SiglipImageProcessor,
    SiglipVisionConfig,
)
from transformers.image_utils import (
    IMAGENET_DEFAULT_MEAN,
    IMAGENET_DEFAULT_STD,
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
)

from vlm.published.base import Published, shape_part

# OpenAI CLIP ViT-L/14 (Radford et al. 2021): width 1024, 24 layers, 16 heads, MLP 4096, patch 14, QuickGELU
CLIP_L14 = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                patch_size=14, projection_dim=768, hidden_act="quick_gelu", layer_norm_eps=1e-5)


def _clip_processor(size: int) -> CLIPImageProcessor:
    return CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size},
                              image_mean=OPENAI_CLIP_MEAN, image_std=OPENAI_CLIP_STD)


shape_part(Published(
    "clip-vit-large-patch14", "vision", lambda: CLIPVisionConfig(**CLIP_L14, image_size=224),
    ("openai/clip-vit-large-patch14",), 304e6, "CLIP ViT-L/14 vision tower, ~304M",
    processor=lambda: _clip_processor(224),
))
shape_part(Published(
    "clip-vit-large-patch14-336", "vision", lambda: CLIPVisionConfig(**CLIP_L14, image_size=336),
    ("openai/clip-vit-large-patch14-336",), 304e6, "CLIP ViT-L/14-336 vision tower, ~304M (LLaVA-1.5's)",
    processor=lambda: _clip_processor(336),
))

# SigLIP so400m/14 at 384 px (Zhai et al. 2023; the shape-optimised ViT of Alabdulmohsin et al. 2023):
# width 1152, 27 layers, 16 heads, MLP 4304; no CLS, an attention-pooling head (unused by a VLM, still held)
shape_part(Published(
    "siglip-so400m-patch14-384", "vision",
    lambda: SiglipVisionConfig(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16,
                               patch_size=14, image_size=384, hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6),
    ("google/siglip-so400m-patch14-384",), 428e6, "SoViT-400m/14 image tower, 428M (the name's ~0.4B)",
    processor=lambda: SiglipImageProcessor(size={"height": 384, "width": 384}, image_mean=[0.5] * 3, image_std=[0.5] * 3),
))

# DINOv2 ViT-L/14 (Oquab et al. 2023; registers: Darcet et al. 2024): width 1024, 24 layers, 16 heads,
# MLP 4096, patch 14, trained at 518 px (37x37 positions), layer scale
DINOV2_L14 = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, mlp_ratio=4, patch_size=14,
                  image_size=518, layerscale_value=1.0, layer_norm_eps=1e-6)


def _dinov2_processor() -> BitImageProcessor:
    return BitImageProcessor(size={"shortest_edge": 256}, crop_size={"height": 224, "width": 224},
                             image_mean=IMAGENET_DEFAULT_MEAN, image_std=IMAGENET_DEFAULT_STD)


shape_part(Published(
    "dinov2-large", "vision", lambda: Dinov2Config(**DINOV2_L14),
    ("facebook/dinov2-large",), 304e6, "DINOv2 ViT-L/14, ~304M", processor=_dinov2_processor,
))
shape_part(Published(
    "dinov2-with-registers-large", "vision", lambda: Dinov2WithRegistersConfig(**DINOV2_L14, num_register_tokens=4),
    ("facebook/dinov2-with-registers-large",), 304e6, "DINOv2 ViT-L/14 + 4 registers, ~304M",
    processor=_dinov2_processor,
))

# ConvNeXt-L (Liu et al. 2022): widths 192/384/768/1536, depths 3/3/27/3, 4x4 stem; the trunk of laion's
# CLIP-ConvNeXt-L that ConvLLaVA uses (open_clip builds it with timm; the shapes and counts are the same).
# ConvLLaVA's fifth stage is the recipe's `vision_overrides` (stage5_depth, stage5_hidden_size).
shape_part(Published(
    "convnext-large", "vision",
    lambda: ConvNextConfig(hidden_sizes=[192, 384, 768, 1536], depths=[3, 3, 27, 3], patch_size=4, image_size=320,
                           layer_scale_init_value=1e-6, drop_path_rate=0.0),
    ("laion/CLIP-convnext_large_d_320.laion2B-s29B-b131K-ft-soup", "laion/CLIP-convnext_large_d_320.laion2B-s29B-b131K-ft",
     "laion/CLIP-convnext_large_d.laion2B-s26B-b102K-augreg", "facebook/convnext-large-224"),
    198e6, "ConvNeXt-L, 198M (with its 1000-class head; before ConvLLaVA's stage 5)",
    processor=lambda: _clip_processor(320),
))
