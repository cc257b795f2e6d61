"""S² (Scaling on Scales): any vision encoder run unchanged over several image scales.

``config.s2_scales`` lists the sizes, smallest first; the smallest is the split (tile) size, the
encoder's own input size, and the processor delivers the largest. For each scale s the normalised
pixels are resized to s x s (bicubic, float32, no antialiasing; when s is not a multiple of the split
size, resized once more up to the next multiple, as the reference s2wrapper does) and cut into
ceil(s / split)^2 split-size tiles, stacked tile-major on the batch axis (every image's tile (0, 0),
then (0, 1), ...). The encoder runs on the stack; each tile's tokens go back onto its grid and the
tiles back into one map, which is area-pooled (averaged) to the part the unpadded image covers and
then to the base grid. Scales are concatenated on channels: tokens stay the base scale's, the width
is the encoder's times the number of scales. Prefix tokens are dropped by the encoder itself
("default" strategy); "full" is refused, since CLS tokens have no place in the merged map.

`encoder_class` picks this wrapper when ``s2_scales`` is set; it wraps whatever the registry holds
for the vision config (a transformers ViT, ConvNeXt, a fused pair, ...).
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn
from torch.nn import functional as F

from vlm.config import VLMConfig
from vlm.vision.base import VISION_ENCODERS, VisionEncoder


def split_tiles(images: torch.Tensor, n: int) -> torch.Tensor:
    """(b, c, n*h, n*w) -> (n*n*b, c, h, w): tile (i, j) of every image is batch block i*n + j."""
    b, c, height, width = images.shape
    tiles = images.reshape(b, c, n, height // n, n, width // n)
    return tiles.permute(2, 4, 0, 1, 3, 5).reshape(n * n * b, c, height // n, width // n)


def merge_tiles(tiles: torch.Tensor, n: int) -> torch.Tensor:
    """The inverse of `split_tiles`: (n*n*b, c, h, w) -> (b, c, n*h, n*w)."""
    stacked, c, height, width = tiles.shape
    b = stacked // (n * n)
    grid = tiles.reshape(n, n, b, c, height, width)
    return grid.permute(2, 3, 0, 4, 1, 5).reshape(b, c, n * height, n * width)


def _bicubic(images: torch.Tensor, side: int) -> torch.Tensor:
    return F.interpolate(images.float(), size=(side, side), mode="bicubic", align_corners=False).to(images.dtype)


def _area(feature_map: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.adaptive_avg_pool2d(feature_map.float(), size).to(feature_map.dtype)


class S2Encoder(VisionEncoder):
    """The wrapped encoder sees a view of the config with S2 off and the split size as image size."""

    examples = {"tiny-clip (S2 at 64, 128 px)": {"vision": "tiny-clip", "s2_scales": [64, 128]}}

    def __init__(self, config: VLMConfig, pretrained: str | None = None):
        super().__init__(config)
        self.num_prefix_tokens(config)  # refuses "full" before anything is built
        encoder, view = self._base(config)
        self.encoder = encoder(view, pretrained=pretrained)

    @staticmethod
    def _base(config: VLMConfig) -> tuple[type[VisionEncoder], VLMConfig]:
        view = copy.copy(config)
        view.s2_scales, view.image_size = None, config.s2_scales[0]
        return VISION_ENCODERS.get(view.vision_config.model_type), view

    @classmethod
    def grid(cls, config: VLMConfig, image_size: int) -> tuple[int, int]:
        """The base scale's grid for any input size: the input is resized to every scale."""
        encoder, view = cls._base(config)
        return encoder.grid(view, view.image_size)

    @classmethod
    def num_prefix_tokens(cls, config: VLMConfig) -> int:
        if config.vision_feature_select_strategy != "default":
            raise ValueError(
                "S2 merges the patch grids of image tiles; prefix tokens (CLS) have no place there: "
                "use vision_feature_select_strategy='default'"
            )
        return 0

    @classmethod
    def out_channels(cls, config: VLMConfig) -> int:
        encoder, view = cls._base(config)
        return encoder.out_channels(view) * len(config.s2_scales)

    def blocks(self) -> list[nn.Module]:
        return self.encoder.blocks()

    def scale_map(self, pixel_values: torch.Tensor, size: int) -> torch.Tensor:
        """(b, c, rows, cols): the encoder's features at ``size``, merged and area-pooled to the base grid."""
        split = self.config.s2_scales[0]
        rows, cols = self.grid(self.config, split)
        n = math.ceil(size / split)
        images = _bicubic(_bicubic(pixel_values, size), n * split)
        tokens = self.encoder(split_tiles(images, n))
        if tokens.shape[1] != rows * cols:
            raise ValueError(f"S2 expected {rows}x{cols} tokens per {split}px tile, the encoder gave {tokens.shape[1]}")
        merged = merge_tiles(tokens.transpose(1, 2).unflatten(2, (rows, cols)), n)
        covered = (math.ceil(size * rows / split), math.ceil(size * cols / split))
        return _area(_area(merged, covered), (rows, cols))

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        maps = [self.scale_map(pixel_values, size) for size in self.config.s2_scales]
        return torch.cat(maps, dim=1).flatten(2).transpose(1, 2)
