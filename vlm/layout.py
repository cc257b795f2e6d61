"""The one function the processor and the model both use to agree on tokens per image."""

from __future__ import annotations

from vlm.config import VLMConfig
from vlm.projectors import PROJECTORS
from vlm.vision import encoder_class


def tokens_per_image(config: VLMConfig, image_size: int | None = None) -> int:
    """Placeholder tokens one `<image>` marker expands to for these parts at ``image_size``."""
    size = image_size or config.image_size
    encoder = encoder_class(config)
    tokens = encoder.num_tokens(config, size)
    return PROJECTORS.get(config.projector_type).num_tokens(tokens, encoder.grid(config, size))
