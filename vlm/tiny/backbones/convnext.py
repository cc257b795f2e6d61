"""Tiny ConvNeXt towers (transformers): V1 and V2, and ``tiny-convnext-shapes``, self-trained on the shapes
world (`vlm.tiny.pretrain_vision`); ConvLLaVA's fifth stage comes from ``vision_overrides``."""

from __future__ import annotations

import tempfile
from pathlib import Path

from transformers import AutoModel, ConvNextConfig, ConvNextImageProcessor, ConvNextV2Config, PreTrainedConfig
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from vlm.tiny.backbone import save_model, tiny_backbone
from vlm.tiny.pretrain_vision import PretrainConfig, pretrain_patch_labels


def _save_convnext(out: Path, config: PreTrainedConfig) -> None:
    save_model(config, AutoModel, out)
    ConvNextImageProcessor(
        size={"shortest_edge": config.image_size}, image_mean=IMAGENET_DEFAULT_MEAN, image_std=IMAGENET_DEFAULT_STD
    ).save_pretrained(out)


@tiny_backbone("tiny-convnext")
def tiny_convnext(out: Path) -> None:
    """A 4-stage ConvNeXt (stride 32) for 256 px; ConvLLaVA's stage 5 comes from ``vision_overrides``."""
    # layer scale starts at 1: the 1e-6 of deep ConvNeXts would leave these few blocks inert for long
    _save_convnext(out, ConvNextConfig(
        patch_size=4, hidden_sizes=[16, 32, 48, 64], depths=[1, 1, 2, 1], image_size=256, layer_scale_init_value=1.0
    ))


@tiny_backbone("tiny-convnextv2")
def tiny_convnextv2(out: Path) -> None:
    """tiny-convnext's shape as a ConvNeXt V2 (GRN blocks), for 128 px: a 4x4 grid."""
    _save_convnext(out, ConvNextV2Config(patch_size=4, hidden_sizes=[16, 32, 48, 64], depths=[1, 1, 2, 1], image_size=128))



# tiny-convnext with a wider third and fourth stage and more blocks there (cheap at 16x16 and 8x8): the
# 5 blocks of tiny-convnext could not learn to tell the shapes apart (a probe read 29 % of them at stride 64).
SHAPES_CONVNEXT = dict(
    patch_size=4, hidden_sizes=[16, 32, 64, 96], depths=[1, 1, 3, 2], image_size=256, layer_scale_init_value=1.0
)


@tiny_backbone("tiny-convnext-shapes", self_trained=True)
def tiny_convnext_shapes(out: Path) -> None:
    """A 4-stage tiny ConvNeXt (stride 32, 256 px) trained to tell each grid cell's colour, shape and
    object box (`vlm.tiny.pretrain_vision`)."""
    with tempfile.TemporaryDirectory() as tmp:
        start = Path(tmp) / "tiny-convnext-shapes"  # the name the progress bar shows
        _save_convnext(start, ConvNextConfig(**SHAPES_CONVNEXT))
        pretrain_patch_labels(start, out, PretrainConfig(steps=1000, batch_size=8, lr=5e-3))
