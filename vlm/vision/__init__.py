"""Vision encoders. Importing this package registers every member."""

from vlm.config import VLMConfig
from vlm.vision import convnext, fused, hf, open_clip, siglip2, timm  # noqa: F401
from vlm.vision.base import VISION_ENCODERS, VisionEncoder
from vlm.vision.s2 import S2Encoder


def encoder_class(config: VLMConfig) -> type[VisionEncoder]:
    """The encoder ``config`` describes: its vision family's, inside the S2 wrapper when ``s2_scales`` is set."""
    return S2Encoder if config.s2_scales else VISION_ENCODERS.get(config.vision_config.model_type)


__all__ = ["VISION_ENCODERS", "VisionEncoder", "encoder_class"]
