"""The encoder a config describes."""

from __future__ import annotations

from vlm.config import VLMConfig
from vlm.vision.base import VISION_ENCODERS, VisionEncoder
from vlm.vision.s2 import S2Encoder


def encoder_class(config: VLMConfig) -> type[VisionEncoder]:
    """The config's vision family's encoder, inside the S² wrapper when ``s2_scales`` is set."""
    return S2Encoder if config.s2_scales else VISION_ENCODERS.get(config.vision_config.model_type)
