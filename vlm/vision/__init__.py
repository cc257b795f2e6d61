"""Vision encoders. Importing this package registers every member."""

from vlm.vision import convnext, fused, hf  # noqa: F401
from vlm.vision.base import VISION_ENCODERS, VisionEncoder, encoder_class

__all__ = ["VISION_ENCODERS", "VisionEncoder", "encoder_class"]
