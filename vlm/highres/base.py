"""The high-resolution seam: how one image becomes base-size tiles, placeholder text and LLM tokens.

Every member sees the same `vlm.layout.ImageLayout` (tile size, tokens per tile, its own
settings). The processor asks it for the image processor and each image's placeholder text; the
model asks it how many tiles each image has and how to assemble the tiles' projected features
into the image's token sequence. Token counts for both come from `ImageLayout.num_tokens`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

import torch

from vlm.registry import Registry

if TYPE_CHECKING:
    from transformers.image_processing_utils import BaseImageProcessor

    from vlm.layout import ImageLayout

ImageSize = tuple[int, int]  # (height, width) of the image as given, before any resizing


class HighRes(ABC):
    """One way of turning an image into tiles; subclasses register under their ``high_res`` key."""

    uses_newline = False  # the model keeps a learned `image_newline` embedding (anyres)
    needs_token_grid = False  # tiles are rejoined on their token grid (anyres), so the projector must keep one
    sized = True  # the model needs `image_sizes` to know each image's tiles

    def __init__(self, layout: ImageLayout):
        self.layout = layout

    def check(self) -> None:  # noqa: B027 - most strategies have nothing to check
        """Raise ``ValueError`` when the layout's settings don't fit this strategy."""

    @abstractmethod
    def tile_count(self, image_size: ImageSize | None) -> int:
        """Base-size images (tiles and thumbnail) one image is encoded as."""

    def num_tokens(self, image_size: ImageSize | None) -> int:
        return self.tile_count(image_size) * self.layout.tile_tokens

    @abstractmethod
    def most_tokens(self) -> int:
        """The largest `num_tokens` of any image size (for context budgets)."""

    def placeholder(self, image_size: ImageSize | None, image_token: str) -> str:
        """The text one ``<image>`` marker becomes."""
        return image_token * self.num_tokens(image_size)

    @abstractmethod
    def image_processor(self, normalisation: dict[str, Any], aspect: str) -> BaseImageProcessor:
        """The transformers image processor producing this strategy's tiles, with the encoder's
        ``resample``/``image_mean``/``image_std``/``rescale_factor`` (``normalisation``)."""

    def assemble(
        self, tiles: torch.Tensor, image_size: ImageSize | None, newline: torch.Tensor | None
    ) -> torch.Tensor:
        """Projected features of one image's tiles ``(k, tile_tokens, d)`` -> its tokens ``(n, d)``,
        in placeholder order."""
        return tiles.flatten(0, 1)


HIGH_RES: Registry[type[HighRes]] = Registry("high_res strategy", package="vlm.highres")


def no_aspect(strategy: str, aspect: str) -> None:
    if aspect != "pad":
        raise ValueError(
            f"aspect={aspect!r} applies to high_res='none'; high_res={strategy!r} sizes its tiles and thumbnail itself"
        )
