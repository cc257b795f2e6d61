"""Tiny open_clip towers in open_clip's hub layout (``open_clip_config.json`` + safetensors, as laion/* repos
ship them): a ViT and the ConvNeXt CLIP layout ConvLLaVA starts from. open_clip is imported when built."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

from vlm.extras import require
from vlm.tiny.backbone import SEED, tiny_backbone

OPEN_CLIP_TEXT = dict(context_length=16, vocab_size=64, width=32, heads=2, layers=1)  # a valid, minimal text tower
OPEN_CLIP_PREPROCESS = dict(mean=list(OPENAI_CLIP_MEAN), std=list(OPENAI_CLIP_STD), interpolation="bicubic")


def _save_open_clip(out: Path, vision_cfg: dict) -> None:
    """A whole open_clip CLIP in its hub layout, as laion/* repos ship it: open_clip_config.json + safetensors."""
    model_cfg = {"embed_dim": 32, "vision_cfg": vision_cfg, "text_cfg": OPEN_CLIP_TEXT}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = require("open_clip").CLIP(**model_cfg)
    out.mkdir(parents=True, exist_ok=True)
    save_file(model.state_dict(), out / "open_clip_model.safetensors")
    config = {"model_cfg": model_cfg, "preprocess_cfg": OPEN_CLIP_PREPROCESS}
    (out / "open_clip_config.json").write_text(json.dumps(config, indent=2))


@tiny_backbone("tiny-open_clip-vit")
def tiny_open_clip_vit(out: Path) -> None:
    """An open_clip ViT on tiny-clip's grid: 8 px patches at 64 px, width 64, 3 blocks."""
    _save_open_clip(out, dict(image_size=64, patch_size=8, width=64, layers=3, head_width=16, mlp_ratio=2.0))


@tiny_backbone("tiny-open_clip-convnext")
def tiny_open_clip_convnext(out: Path) -> None:
    """convnext_large_d_320's tower layout (a timm trunk, no pooling, MLP projection, stochastic depth)
    on timm's test_convnext (widths 24-64, stride 32), for 256 px."""
    _save_open_clip(out, dict(timm_model_name="test_convnext", timm_model_pretrained=False, timm_pool="",
                              timm_proj="mlp", timm_drop=0.0, timm_drop_path=0.1, image_size=256))
