"""Vision towers from transformers (CLIP, SigLIP, DINOv2 with or without registers), selected by
hidden-state layer like LLaVA."""

from __future__ import annotations

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PreTrainedConfig

from vlm.attention import attn_support
from vlm.config import VLMConfig
from vlm.vision.base import VISION_ENCODERS, VisionEncoder


def load_vision_config(path: str) -> PreTrainedConfig:
    """The vision config of an HF checkpoint folder; for a CLIP/SigLIP image-text pair, its vision part."""
    config = AutoConfig.from_pretrained(path)
    return getattr(config, "vision_config", None) or config


class HFViTEncoder(VisionEncoder):
    """A transformers ViT tower; features are the chosen hidden states with prefix tokens handled."""

    prefix_tokens = 1

    def __init__(self, config: VLMConfig, pretrained: str | None = None):
        super().__init__(config)
        if pretrained is None:
            self.model = AutoModel.from_config(config.vision_config)
        else:
            self.model = AutoModel.from_pretrained(
                pretrained, config=config.vision_config, dtype=config.dtype
            )

    @classmethod
    def grid(cls, config: VLMConfig, image_size: int) -> tuple[int, int]:
        side = image_size // config.vision_config.patch_size
        return side, side

    @classmethod
    def num_prefix_tokens(cls, config: VLMConfig) -> int:
        return cls.prefix_tokens

    @classmethod
    def attn_implementations(cls, config: VLMConfig) -> tuple[str, ...]:
        """What the transformers class of the vision config declares (e.g. SigLIP2: eager and sdpa only)."""
        return attn_support(AutoModel._model_mapping[type(config.vision_config)])

    @classmethod
    def out_channels(cls, config: VLMConfig) -> int:
        return config.vision_config.hidden_size * len(config.feature_layers)

    def blocks(self) -> list[nn.Module]:
        vit = self.model
        layers = list(getattr(vit.encoder, "layers", None) or vit.encoder.layer)  # DINOv2 says `layer`
        names = ("post_layernorm", "layernorm", "head")
        head = [m for m in (getattr(vit, n, None) for n in names) if isinstance(m, nn.Module)]
        return [nn.ModuleList([vit.embeddings, *self._pre_norm(vit), layers[0]]), *layers[1:-1],
                nn.ModuleList([layers[-1], *head])]

    @staticmethod
    def _pre_norm(vit: nn.Module) -> list[nn.Module]:
        norm = getattr(vit, "pre_layrnorm", None)  # CLIP's spelling
        return [norm] if norm is not None else []

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        out = self.model(pixel_values=pixel_values, output_hidden_states=True, return_dict=True)
        drop = self.num_prefix_tokens(self.config) if self.config.vision_feature_select_strategy == "default" else 0
        layers = [out.hidden_states[i][:, drop:] for i in self.config.feature_layers]
        return torch.cat(layers, dim=-1)


@VISION_ENCODERS.register("clip_vision_model")
class CLIPEncoder(HFViTEncoder):
    prefix_tokens = 1
    examples = {"tiny-clip": {"vision": "tiny-clip"},
                "tiny-clip (full: CLS kept)": {"vision": "tiny-clip", "vision_feature_select_strategy": "full"}}


@VISION_ENCODERS.register("siglip_vision_model")
class SiglipEncoder(HFViTEncoder):
    prefix_tokens = 0
    examples = {"tiny-siglip": {"vision": "tiny-siglip"}}


@VISION_ENCODERS.register("dinov2")
class Dinov2Encoder(HFViTEncoder):
    prefix_tokens = 1
    examples = {"tiny-dinov2": {"vision": "tiny-dinov2"}}


@VISION_ENCODERS.register("dinov2_with_registers")
class Dinov2RegistersEncoder(HFViTEncoder):
    examples = {"tiny-dinov2-registers": {"vision": "tiny-dinov2-registers"}}

    @classmethod
    def num_prefix_tokens(cls, config: VLMConfig) -> int:
        return 1 + config.vision_config.num_register_tokens
