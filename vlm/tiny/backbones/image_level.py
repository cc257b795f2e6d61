"""Tiny ViTs after image-level self-training (`vlm.tiny.pretrain_image_level`): encoders whose patch tokens
were never asked about their patch, as CLIP's are; locality alignment (MaskEmbed) starts from them."""

from __future__ import annotations

from pathlib import Path

from vlm.tiny.backbone import tiny_backbone, tiny_path
from vlm.tiny.pretrain_image_level import pretrain_image_level


@tiny_backbone("tiny-clip-image-level", self_trained=True)
def tiny_clip_image_level(out: Path) -> None:
    pretrain_image_level(tiny_path("tiny-clip"), out)


@tiny_backbone("tiny-open_clip-vit-image-level", self_trained=True)
def tiny_open_clip_vit_image_level(out: Path) -> None:
    pretrain_image_level(tiny_path("tiny-open_clip-vit"), out)
