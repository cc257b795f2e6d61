"""The composite configuration of an assembled VLM: vision encoder -> projector -> causal LM."""

from __future__ import annotations

from typing import Literal

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec


class VLMConfig(PreTrainedConfig):
    """Vision, text and projector settings of a `VLMForConditionalGeneration`.

    ``vision_feature_select_strategy="default"`` drops the encoder family's prefix tokens
    (CLS, registers; none for SigLIP), ``"full"`` keeps them. ``image_seq_length`` is the
    number of placeholder tokens one ``<image>`` marker expands to; it is computed from the
    parts by `vlm.layout.tokens_per_image` and stored so the processor and model agree.
    """

    model_type = "vlm"
    attribute_map = {"image_token_index": "image_token_id"}
    sub_configs_defaults = {
        "vision_config": SubConfigSpec(config_class=AutoConfig, model_type="clip_vision_model"),
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="llama"),
    }

    vision_config: dict | PreTrainedConfig | None = None
    text_config: dict | PreTrainedConfig | None = None
    projector_type: str = "mlp2x_gelu"
    projector_bias: bool = True
    vision_feature_layer: int | list[int] = -2
    vision_feature_select_strategy: Literal["default", "full"] = "default"
    image_size: int | None = None
    image_token: str = "<image>"
    image_token_id: int | None = None
    image_seq_length: int | None = None
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.image_size is None:
            self.image_size = int(getattr(self.vision_config, "image_size", 224))
        if self.vision_feature_select_strategy not in ("default", "full"):
            raise ValueError(
                f"vision_feature_select_strategy must be 'default' or 'full', got {self.vision_feature_select_strategy!r}"
            )

    @property
    def feature_layers(self) -> list[int]:
        layer = self.vision_feature_layer
        return [layer] if isinstance(layer, int) else list(layer)
