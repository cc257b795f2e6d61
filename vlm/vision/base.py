"""The vision-encoder seam: every encoder family maps pixels to a (tokens, channels) sequence."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
from torch import nn
from transformers import PreTrainedModel

from vlm.config import VLMConfig
from vlm.registry import Registry

_TORCH_LAYERS = ("torch.nn.", "torch.ao.")


def layer_classes(module: nn.Module) -> set[str]:
    """Class names of the repeated layers in ``module``: members of a ModuleList or Sequential holding two
    or more modules of one class, torch's own building blocks (Linear, norms, activations) aside."""
    found = set()
    for container in module.modules():
        if isinstance(container, (nn.ModuleList, nn.Sequential)):
            classes = [type(child) for child in container.children()]
            found.update(c.__name__ for c in set(classes) if classes.count(c) > 1 and not c.__module__.startswith(_TORCH_LAYERS))
    return found


class VisionEncoder(nn.Module, ABC):
    """Pixels (n, 3, H, W) -> features (n, tokens, out_channels) after layer selection and prefix handling.

    Built from ``config`` alone (random weights, e.g. before `from_pretrained` fills them), or
    with ``pretrained`` naming the checkpoint the family knows how to load.
    """

    # tiny examples of this family for the parts catalogue (`vlm.parts`): label -> `BuildSpec` fields
    examples: ClassVar[dict[str, dict[str, Any]]] = {}

    def __init__(self, config: VLMConfig, pretrained: str | None = None):
        super().__init__()
        self.config = config

    @classmethod
    @abstractmethod
    def grid(cls, config: VLMConfig, image_size: int) -> tuple[int, int]:
        """Rows and columns of the patch-token grid for a square input of ``image_size`` pixels."""

    @classmethod
    @abstractmethod
    def num_prefix_tokens(cls, config: VLMConfig) -> int:
        """Non-patch tokens in front of the grid (CLS, registers)."""

    @classmethod
    @abstractmethod
    def out_channels(cls, config: VLMConfig) -> int:
        """Channel width of the selected features (all selected layers concatenated)."""

    @classmethod
    def num_tokens(cls, config: VLMConfig, image_size: int) -> int:
        rows, cols = cls.grid(config, image_size)
        kept_prefix = (
            0 if config.vision_feature_select_strategy == "default" else cls.num_prefix_tokens(config)
        )
        return rows * cols + kept_prefix

    @classmethod
    def attn_implementations(cls, config: VLMConfig) -> tuple[str, ...] | None:
        """The `vlm.attention` implementations this tower runs; None: the choice does not reach it (no
        attention layers, or a library that picks its own)."""
        return None

    def no_split_modules(self) -> set[str]:
        """Class names `device_map` must keep whole: what transformers models inside declare, and the
        tower's repeated layers."""
        declared = {name for m in self.modules() if isinstance(m, PreTrainedModel) for name in m._no_split_modules or ()}
        return declared | layer_classes(self)

    @abstractmethod
    def blocks(self) -> list[nn.Module]:
        """The encoder's stages in input-to-output order (ViT layers, ConvNeXt stages), for training
        "from stage k on": the stem belongs to the first block, final norms to the last."""

    @abstractmethod
    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor: ...


# Keyed by the vision sub-config's `model_type` (exact match), e.g. "clip_vision_model".
VISION_ENCODERS: Registry[type[VisionEncoder]] = Registry("vision encoder", package="vlm.vision")
