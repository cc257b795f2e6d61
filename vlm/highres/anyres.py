"""``high_res="anyres"``: LLaVA-NeXT's any-resolution tiling, token for token as transformers' LlavaNext.

An image is fitted into the grid resolution ("pinpoint") that keeps the most of its pixels, then
wastes the least; resized keeping its aspect, padded to the pinpoint, and cut into base-size tiles
row-major, after a base-size thumbnail (the whole image squashed). The model puts the tiles'
feature grids back together, drops the rows or columns that only saw padding, and ends every row
with the learned ``image_newline`` embedding; the thumbnail's tokens come first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from transformers import LlavaNextImageProcessor

from vlm.highres.base import HIGH_RES, HighRes, ImageSize, no_aspect

# LLaVA-NeXT's grid resolutions for its 336 px base, in multiples of the base size (height, width).
PINPOINT_MULTIPLES = ((1, 2), (2, 1), (2, 2), (3, 1), (1, 3))


def default_pinpoints(base: int) -> list[list[int]]:
    """LLaVA-NeXT's pinpoints scaled to a ``base``-pixel tile."""
    return [[rows * base, cols * base] for rows, cols in PINPOINT_MULTIPLES]


def select_resolution(image_size: ImageSize, pinpoints: Sequence[Sequence[int]]) -> tuple[int, int]:
    """The pinpoint (height, width) keeping the most effective pixels of the image, then wasting the
    least canvas; the first listed wins a full tie."""
    height, width = image_size

    def fit(pinpoint: Sequence[int]) -> tuple[int, int]:
        canvas_h, canvas_w = pinpoint
        scale = min(canvas_w / width, canvas_h / height)
        effective = min(int(width * scale) * int(height * scale), width * height)
        return effective, -(canvas_h * canvas_w - effective)

    best = max(pinpoints, key=fit)  # max() keeps the first of equal keys
    return int(best[0]), int(best[1])


def content_bounds(image_size: ImageSize, grid: tuple[int, int]) -> tuple[slice, slice]:
    """Rows and columns of a (rows, cols) feature grid covering the image rather than the padding
    added around it (the image was centred along the axis it did not fill)."""
    height, width = image_size
    rows, cols = grid
    if width / height > cols / rows:
        content = int(round(height * (cols / width), 7))
        pad = (rows - content) // 2
        return slice(pad, rows - pad), slice(0, cols)
    content = int(round(width * (rows / height), 7))
    pad = (cols - content) // 2
    return slice(0, rows), slice(pad, cols - pad)


def _span(bounds: slice) -> int:
    return bounds.stop - bounds.start


@HIGH_RES.register("anyres")
class Anyres(HighRes):
    uses_newline = True
    needs_token_grid = True

    @property
    def side(self) -> int:
        """Rows (= columns) of one tile's projected token grid."""
        return math.isqrt(self.layout.tile_tokens)

    def check(self) -> None:
        base, tokens = self.layout.tile_size, self.layout.tile_tokens
        if self.side**2 != tokens:
            raise ValueError(
                f"anyres lays tiles out on a square token grid, but a tile gives {tokens} tokens; with "
                "vision_feature_select_strategy='full' prefix tokens (CLS) have no grid place: use 'default'"
            )
        pinpoints = self.layout.grid_pinpoints
        if not pinpoints or any(len(p) != 2 or min(p) <= 0 or p[0] % base or p[1] % base for p in pinpoints):
            raise ValueError(
                f"image_grid_pinpoints must be (height, width) pairs in positive multiples of the {base} px "
                f"tile size, got {pinpoints!r}"
            )

    def grid(self, image_size: ImageSize) -> tuple[int, int]:
        """Tiles (rows, cols) the image is cut into."""
        height, width = select_resolution(image_size, self.layout.grid_pinpoints)
        return height // self.layout.tile_size, width // self.layout.tile_size

    def tile_count(self, image_size: ImageSize | None) -> int:
        rows, cols = self.grid(_required(image_size))
        return rows * cols + 1

    def num_tokens(self, image_size: ImageSize | None) -> int:
        size = _required(image_size)
        rows, cols = self.grid(size)
        kept_rows, kept_cols = content_bounds(size, (rows * self.side, cols * self.side))
        return self.layout.tile_tokens + _span(kept_rows) * (_span(kept_cols) + 1)

    def most_tokens(self) -> int:
        base, side = self.layout.tile_size, self.side
        return self.layout.tile_tokens + max(
            (h // base) * side * ((w // base) * side + 1) for h, w in self.layout.grid_pinpoints
        )

    def image_processor(self, normalisation: dict[str, Any], aspect: str) -> LlavaNextImageProcessor:
        no_aspect("anyres", aspect)
        base = self.layout.tile_size
        return LlavaNextImageProcessor(
            size={"shortest_edge": base},
            crop_size={"height": base, "width": base},
            image_grid_pinpoints=[list(p) for p in self.layout.grid_pinpoints],
            do_pad=True,
            **normalisation,
        )

    def assemble(
        self, tiles: torch.Tensor, image_size: ImageSize | None, newline: torch.Tensor | None
    ) -> torch.Tensor:
        size = _required(image_size)
        rows, cols = self.grid(size)
        side, width = self.side, tiles.shape[-1]
        thumbnail, grid = tiles[0], tiles[1:]
        # (rows, cols, side, side, d) -> one (rows*side, cols*side, d) map, tiles placed row-major
        canvas = grid.view(rows, cols, side, side, width).permute(0, 2, 1, 3, 4).reshape(rows * side, cols * side, width)
        kept_rows, kept_cols = content_bounds(size, (rows * side, cols * side))
        canvas = canvas[kept_rows, kept_cols]
        ends = newline.to(canvas.dtype).expand(canvas.shape[0], 1, width)
        return torch.cat([thumbnail, torch.cat([canvas, ends], dim=1).flatten(0, 1)])


def _required(image_size: ImageSize | None) -> ImageSize:
    if image_size is None:
        raise ValueError("high_res='anyres' needs each image's size (image_sizes from the processor)")
    return int(image_size[0]), int(image_size[1])
