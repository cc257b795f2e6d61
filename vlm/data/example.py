"""The unit every data source yields and every tokenizer consumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from PIL import Image


@dataclass
class Example:
    """One validated training sample.

    ``messages`` are in the transformers chat format: ``{"role": "user"|"assistant"|"system",
    "content": [{"type": "image"} | {"type": "text", "text": str}, ...]}``; the number of image
    items equals ``len(images)``, in order. ``images`` are loaded RGB PIL images.
    """

    id: str
    messages: list[dict[str, Any]]
    images: list[Image.Image] = field(default_factory=list)
    source: str = ""
