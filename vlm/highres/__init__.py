"""High-resolution strategies (``high_res``). Importing this package registers every member."""

from vlm.highres import anyres, single, tiles  # noqa: F401
from vlm.highres.base import HIGH_RES, HighRes, ImageSize

__all__ = ["HIGH_RES", "HighRes", "ImageSize"]
