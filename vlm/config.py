"""The composite configuration of an assembled VLM: vision encoder -> projector -> causal LM."""

from __future__ import annotations

from typing import Literal

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

from vlm.attention import ATTN_IMPLEMENTATIONS
from vlm.highres.anyres import default_pinpoints


class VLMConfig(PreTrainedConfig):
    """Vision, text and projector settings of a `VLMForConditionalGeneration`.

    ``vision_feature_select_strategy="default"`` drops the encoder family's prefix tokens
    (CLS, registers; none for SigLIP), ``"full"`` keeps them. ``image_seq_length`` is the
    number of placeholder tokens one ``<image>`` marker expands to; it is computed from the
    parts by `vlm.layout.tokens_per_image` and stored so the processor and model agree.
    ``s2_scales`` (S², `vlm.vision.s2`) lists the image sizes the encoder runs at, the first being
    its tile size; ``image_size`` is then the last, the size the processor delivers.
    ``high_res`` (`vlm.highres`): ``"none"`` (one image), ``"anyres"`` (LLaVA-NeXT tiling over
    ``image_grid_pinpoints``, (height, width) multiples of ``image_size``, LLaVA-NeXT's scaled by
    default) or ``"tiles"`` (NVLM-D tiling into at most ``max_tiles`` tiles, with tile tags).
    ``default_attn_implementation`` (`vlm.attention`): the attention the model loads with when
    ``from_pretrained`` is given none and this machine can run it (the build's choice, kept in the folder).
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
    s2_scales: list[int] | None = None
    high_res: str = "none"
    image_grid_pinpoints: list[list[int]] | None = None
    max_tiles: int = 6
    default_attn_implementation: str | None = None
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.s2_scales is not None:
            self._check_s2()
        if self.image_size is None:
            self.image_size = int(getattr(self.vision_config, "image_size", 224))
        if self.high_res == "anyres" and self.image_grid_pinpoints is None:
            self.image_grid_pinpoints = default_pinpoints(self.image_size)
        if self.default_attn_implementation not in (None, *ATTN_IMPLEMENTATIONS):
            raise ValueError(
                f"default_attn_implementation must be one of {ATTN_IMPLEMENTATIONS} or None, "
                f"got {self.default_attn_implementation!r}"
            )
        if self.vision_feature_select_strategy not in ("default", "full"):
            raise ValueError(
                f"vision_feature_select_strategy must be 'default' or 'full', got {self.vision_feature_select_strategy!r}"
            )

    def _check_s2(self) -> None:
        scales = list(self.s2_scales)
        valid = all(isinstance(s, int) and s > 0 for s in scales) and scales == sorted(set(scales))
        if len(scales) < 2 or not valid:
            raise ValueError(
                "s2_scales must be at least two strictly increasing image sizes in pixels (the first is the "
                f"encoder's tile size, the last the processor's image size), got {self.s2_scales!r}"
            )
        if self.image_size not in (None, scales[-1]):
            raise ValueError(
                f"with s2_scales={scales} the processor's image size is the largest scale, {scales[-1]}; "
                f"got image_size={self.image_size}"
            )
        self.s2_scales, self.image_size = scales, scales[-1]

    @property
    def feature_layers(self) -> list[int]:
        layer = self.vision_feature_layer
        return [layer] if isinstance(layer, int) else list(layer)
