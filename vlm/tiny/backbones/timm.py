"""A tiny timm ViT in timm's Hugging Face layout. timm is imported when built."""

from __future__ import annotations

from pathlib import Path

import torch

from vlm.extras import require
from vlm.tiny.backbone import SEED, tiny_backbone


@tiny_backbone("tiny-timm-vit")
def tiny_timm_vit(out: Path) -> None:
    """timm's test_vit (width 64, 6 blocks) with 8 px patches at 64 px and a 10-class head, in timm's HF layout."""
    timm = require("timm")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = timm.create_model("test_vit", pretrained=False, img_size=64, patch_size=8, num_classes=10)
    timm.models.save_for_hf(model, out, safe_serialization=True, data_config={"input_size": (3, 64, 64)})
