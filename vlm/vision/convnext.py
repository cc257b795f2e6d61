"""ConvNeXt towers (ConvLLaVA): the last stage's feature map, flattened row-major into tokens.

A ConvNeXt has stride ``patch_size * 2 ** (num_stages - 1)`` (32). ConvLLaVA adds a fifth stage
(channels-first LayerNorm + 2x2 stride-2 conv, then ConvNeXt blocks), built from transformers' own
stage class, for stride 64: 768 px -> 144 tokens, 1024 -> 256, 1536 -> 576. There are no position
embeddings, so any input size works.

The fifth stage is described by two extra attributes of the vision sub-config, ``stage5_depth``
(blocks; 0 or absent = no fifth stage) and ``stage5_hidden_size`` (width; absent = twice the last
stage's). transformers keeps unknown config attributes through ``to_dict``/``save_pretrained``/
``from_pretrained``, so a saved VLM rebuilds the same tower; at build time they are set with
``BuildSpec(vision_overrides={"stage5_depth": 6, "stage5_hidden_size": 3072})``. A fresh fifth
stage is initialised from a fixed seed with the backbone's own init.

Feature layers: a "layer" is a stage output (``hidden_states`` index: 0 stem, k stage k). Stages
differ in resolution, so only the last one is supported: ``vision_feature_layer=-1``.

``blocks()``: [stem + stage 1, stage 2, stage 3, stage 4, (stage 5)]; the unused pooler norm goes
with the last. ConvLLaVA's "ConvNeXt from the third stage on" is ``from:3``; stage 5 alone ``from:5``.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import AutoModel, PreTrainedConfig
from transformers.models.convnext.modeling_convnext import ConvNextStage
from transformers.models.convnextv2.modeling_convnextv2 import ConvNextV2Stage

from vlm.config import VLMConfig
from vlm.vision.base import VISION_ENCODERS, VisionEncoder

STAGE5_SEED = 0


def stage5_shape(vision_config: PreTrainedConfig) -> tuple[int, int]:
    """(depth, width) of the added fifth stage; depth 0 means there is none."""
    depth = int(getattr(vision_config, "stage5_depth", 0) or 0)
    width = getattr(vision_config, "stage5_hidden_size", None) or 2 * vision_config.hidden_sizes[-1]
    return depth, int(width)


def _patch(vision_config: PreTrainedConfig) -> tuple[int, int]:
    p = vision_config.patch_size
    return (p, p) if isinstance(p, int) else (int(p[0]), int(p[-1]))


class ConvNextEncoder(VisionEncoder):
    """A transformers ConvNeXt (v1 or v2) plus ConvLLaVA's optional fifth stage."""

    stage_class: type[nn.Module] = ConvNextStage
    examples = {"tiny-convnext + stage 5": {"vision": "tiny-convnext", "vision_feature_layer": -1,
                                            "vision_overrides": {"stage5_depth": 1, "stage5_hidden_size": 96}}}

    def __init__(self, config: VLMConfig, pretrained: str | None = None):
        super().__init__(config)
        self._check_layers(config)
        vision = config.vision_config
        # a ConvNeXt has no attention: whatever the VLM's attention choice, its transformers model is built plain
        if pretrained is None:
            self.model = AutoModel.from_config(vision, attn_implementation="eager")
        else:
            self.model = AutoModel.from_pretrained(pretrained, config=vision, dtype=config.dtype, attn_implementation="eager")
        depth, width = stage5_shape(vision)
        self.stage5 = None
        if depth:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(STAGE5_SEED)
                self.stage5 = self.stage_class(vision, vision.hidden_sizes[-1], width, depth=depth)
                self.stage5.apply(self.model._init_weights)
            self.stage5.to(next(self.model.parameters()).dtype)

    @staticmethod
    def _check_layers(config: VLMConfig) -> None:
        stages = config.vision_config.num_stages + (1 if stage5_shape(config.vision_config)[0] else 0)
        if config.feature_layers not in ([-1], [stages]):
            raise ValueError(
                f"ConvNeXt encoders give the last stage's feature map only (stages differ in resolution): "
                f"set vision_feature_layer=-1, got {config.vision_feature_layer!r}"
            )

    @classmethod
    def stride(cls, config: VLMConfig) -> tuple[int, int]:
        """Pixels per output token along (rows, cols): the stem's patch times one 2x per downsampling."""
        vision = config.vision_config
        downsamplings = vision.num_stages - 1 + (1 if stage5_shape(vision)[0] else 0)
        return tuple(p * 2**downsamplings for p in _patch(vision))

    @classmethod
    def grid(cls, config: VLMConfig, image_size: int) -> tuple[int, int]:
        rows, cols = cls.stride(config)
        return image_size // rows, image_size // cols

    @classmethod
    def num_prefix_tokens(cls, config: VLMConfig) -> int:
        return 0

    @classmethod
    def out_channels(cls, config: VLMConfig) -> int:
        cls._check_layers(config)
        depth, width = stage5_shape(config.vision_config)
        return width if depth else config.vision_config.hidden_sizes[-1]

    def blocks(self) -> list[nn.Module]:
        stages = [*self.model.encoder.stages, *([self.stage5] if self.stage5 is not None else [])]
        first = nn.ModuleList([self.model.embeddings, stages[0]])
        return [first, *stages[1:-1], nn.ModuleList([stages[-1], self.model.layernorm])]

    def feature_map(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(n, channels, rows, cols): the last stage's output, before any norm or pooling."""
        features = self.model(pixel_values=pixel_values, return_dict=True).last_hidden_state
        return self.stage5(features) if self.stage5 is not None else features

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.feature_map(pixel_values).flatten(2).transpose(1, 2)


VISION_ENCODERS.register("convnext", ConvNextEncoder)


@VISION_ENCODERS.register("convnextv2")
class ConvNextV2Encoder(ConvNextEncoder):
    stage_class = ConvNextV2Stage
    examples = {"tiny-convnextv2": {"vision": "tiny-convnextv2", "vision_feature_layer": -1}}
