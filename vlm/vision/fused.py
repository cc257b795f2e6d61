"""Fused encoders (Prismatic's DINOv2 + SigLIP): several encoders on one token grid, channels concatenated.

Each member keeps its own normalisation, as Prismatic feeds each encoder its own transform: the
processor of a fused model only rescales pixels to [0, 1] (mean 0, std 1) and every member
re-normalises with the mean/std its source declares (`vlm.vision.sources`), stored in the config.
``BuildSpec(vision="tiny-dinov2+tiny-siglip")`` names the members, each resolved like a single vision.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import torch
from torch import nn
from transformers import AutoConfig, PreTrainedConfig

from vlm.config import VLMConfig
from vlm.vision.base import VISION_ENCODERS, VisionEncoder

if TYPE_CHECKING:
    from vlm.vision.sources import VisionSource


class FusedVisionConfig(PreTrainedConfig):
    model_type = "vlm_fused_vision"

    members: list | None = None  # member vision configs as dicts (each with its model_type)
    image_mean: list | None = None  # per member [r, g, b]
    image_std: list | None = None
    image_size: int = 224

    def member_configs(self) -> list[PreTrainedConfig]:
        return [AutoConfig.for_model(**dict(m)) for m in self.members or []]


AutoConfig.register(FusedVisionConfig.model_type, FusedVisionConfig)


def fused_vision_config(sources: list[VisionSource]) -> FusedVisionConfig:
    """The fused config of resolved member encoders (their vision configs and normalisations)."""
    return FusedVisionConfig(
        members=[s.config.to_dict() for s in sources],
        image_mean=[list(s.normalisation.image_mean) for s in sources],
        image_std=[list(s.normalisation.image_std) for s in sources],
        image_size=int(getattr(sources[0].config, "image_size", 224)),
    )


def _member_view(config: VLMConfig, member: PreTrainedConfig) -> VLMConfig:
    view = copy.copy(config)
    view.vision_config = member
    return view


@VISION_ENCODERS.register(FusedVisionConfig.model_type)
class FusedEncoder(VisionEncoder):
    """Several encoders on one token grid, channels concatenated (Prismatic's DINOv2 + SigLIP)."""

    examples = {"tiny-dinov2+tiny-siglip": {"vision": "tiny-dinov2+tiny-siglip"}}

    def __init__(self, config: VLMConfig, pretrained: str | None = None):
        super().__init__(config)
        views = self._views(config)
        folders = pretrained.split("+") if pretrained else [None] * len(views)
        if len(folders) != len(views):
            raise ValueError(f"{len(views)} fused members but {len(folders)} checkpoint folders: {pretrained!r}")
        self.members = nn.ModuleList(
            VISION_ENCODERS.get(v.vision_config.model_type)(v, pretrained=f) for v, f in zip(views, folders, strict=True)
        )

    @staticmethod
    def _views(config: VLMConfig) -> list[VLMConfig]:
        return [_member_view(config, m) for m in config.vision_config.member_configs()]

    @classmethod
    def _classes(cls, config: VLMConfig) -> list[tuple[type[VisionEncoder], VLMConfig]]:
        return [(VISION_ENCODERS.get(v.vision_config.model_type), v) for v in cls._views(config)]

    @classmethod
    def grid(cls, config: VLMConfig, image_size: int) -> tuple[int, int]:
        grids = {f"{v.vision_config.model_type}": enc.grid(v, image_size) for enc, v in cls._classes(config)}
        if len(set(grids.values())) != 1:
            raise ValueError(f"fused members must share a token grid at {image_size} px; got {grids}")
        return next(iter(grids.values()))

    @classmethod
    def num_prefix_tokens(cls, config: VLMConfig) -> int:
        if config.vision_feature_select_strategy != "default":
            raise ValueError("a fused encoder concatenates patch tokens only: use vision_feature_select_strategy='default'")
        return 0

    @classmethod
    def out_channels(cls, config: VLMConfig) -> int:
        return sum(enc.out_channels(v) for enc, v in cls._classes(config))

    def blocks(self) -> list[nn.Module]:
        per_member = [m.blocks() for m in self.members]
        if len({len(b) for b in per_member}) != 1:
            raise ValueError(f"fused members have different block counts {[len(b) for b in per_member]}; "
                             "train them 'full' or 'frozen' rather than from:K")
        return [nn.ModuleList(group) for group in zip(*per_member, strict=True)]

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        vc = self.config.vision_config
        mean = torch.tensor(vc.image_mean, dtype=pixel_values.dtype, device=pixel_values.device).view(-1, 1, 3, 1, 1)
        std = torch.tensor(vc.image_std, dtype=pixel_values.dtype, device=pixel_values.device).view(-1, 1, 3, 1, 1)
        return torch.cat([m((pixel_values - mean[i]) / std[i]) for i, m in enumerate(self.members)], dim=-1)
