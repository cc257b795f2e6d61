"""The one place the processor and the model both use to agree on tokens per image.

`tokens_per_image` is what one base-size image (a tile) becomes; `ImageLayout.num_tokens` is
what one image of any size becomes under the config's ``high_res`` strategy (`vlm.highres`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from vlm.config import VLMConfig
from vlm.highres.base import HIGH_RES, HighRes, ImageSize
from vlm.projectors.base import PROJECTORS
from vlm.vision.encoder import encoder_class


def token_grid(config: VLMConfig, image_size: int | None = None) -> tuple[int, int]:
    """Rows and columns of the encoder's patch-token grid at ``image_size`` (spatial projectors work on it)."""
    return encoder_class(config).grid(config, image_size or config.image_size)


def tokens_per_image(config: VLMConfig, image_size: int | None = None) -> int:
    """Placeholder tokens one `<image>` marker expands to for these parts at ``image_size``."""
    size = image_size or config.image_size
    tokens = encoder_class(config).num_tokens(config, size)
    return PROJECTORS.get(config.projector_type).num_tokens(tokens, token_grid(config, size))


@dataclass(frozen=True)
class ImageLayout:
    """Everything the processor and the model must agree on to turn images into tiles and tokens.

    Held by the model (`image_layout(config)`) and by the processor (as a dict in its config).
    """

    high_res: str = "none"
    tile_size: int = 224  # pixels of every tile and thumbnail: the encoder's input size
    tile_tokens: int = 1  # placeholder tokens one tile becomes (`tokens_per_image`)
    grid_pinpoints: tuple[tuple[int, int], ...] = ()  # anyres: (height, width) canvases
    max_tiles: int = 1  # tiles: most tiles besides the thumbnail

    def __post_init__(self):
        object.__setattr__(self, "grid_pinpoints", tuple(tuple(p) for p in self.grid_pinpoints))
        self.strategy.check()

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "grid_pinpoints": [list(p) for p in self.grid_pinpoints]}

    @property
    def strategy(self) -> HighRes:
        return HIGH_RES.get(self.high_res)(self)

    def tile_count(self, image_size: ImageSize | None = None) -> int:
        return self.strategy.tile_count(image_size)

    def num_tokens(self, image_size: ImageSize | None = None) -> int:
        """Placeholder tokens one image of ``image_size`` (height, width) becomes."""
        return self.strategy.num_tokens(image_size)

    def most_tokens(self) -> int:
        """The most placeholder tokens any one image can take."""
        return self.strategy.most_tokens()

    def sizes(self, image_sizes: torch.Tensor | Sequence | None, n_images: int) -> list[ImageSize | None]:
        """Per-image sizes as tuples; ``None`` each where the strategy needs none."""
        if image_sizes is None:
            if self.strategy.sized:
                raise ValueError(f"high_res={self.high_res!r} needs image_sizes (the processor returns them)")
            return [None] * n_images
        rows = image_sizes.tolist() if isinstance(image_sizes, torch.Tensor) else list(image_sizes)
        return [(int(h), int(w)) for h, w in rows]

    def stack_tiles(self, pixel_values: torch.Tensor, sizes: Sequence[ImageSize | None]) -> torch.Tensor:
        """Every image's tiles as one ``(total_tiles, 3, H, W)`` batch, from either that already or
        the ``(n_images, max_tiles, 3, H, W)`` zero-padded stack transformers' LlavaNext processor emits."""
        counts = [self.tile_count(size) for size in sizes]
        if pixel_values.dim() == 5:
            if pixel_values.shape[0] != len(counts) or pixel_values.shape[1] < max(counts, default=0):
                raise ValueError(
                    f"pixel_values {tuple(pixel_values.shape)} do not hold {len(counts)} images of {counts} tiles"
                )
            return torch.cat([tiles[:n] for tiles, n in zip(pixel_values, counts, strict=True)])
        if pixel_values.dim() != 4 or pixel_values.shape[0] != sum(counts):
            raise ValueError(
                f"pixel_values {tuple(pixel_values.shape)} do not hold the {sum(counts)} tiles of "
                f"{len(counts)} images ({counts} each) for high_res={self.high_res!r}"
            )
        return pixel_values


def image_layout(config: VLMConfig) -> ImageLayout:
    """The config's image layout: its ``high_res`` strategy over base-size tiles of ``image_size``."""
    projector = PROJECTORS.get(config.projector_type)
    if HIGH_RES.get(config.high_res).needs_token_grid and not projector.keeps_grid:
        raise ValueError(
            f"high_res={config.high_res!r} rejoins each image's tiles on their token grid, but projector "
            f"{config.projector_type!r} emits learned queries with no grid place: use a projector that keeps "
            f"the grid ({', '.join(k for k in PROJECTORS.keys() if PROJECTORS.get(k).keeps_grid)})"
        )
    return ImageLayout(
        high_res=config.high_res,
        tile_size=config.image_size,
        tile_tokens=config.image_seq_length or tokens_per_image(config),
        grid_pinpoints=tuple(tuple(p) for p in config.image_grid_pinpoints or ()),
        max_tiles=config.max_tiles,
    )
