"""``high_res="tiles"``: NVLM-D's dynamic tiling with 1-D tile tags.

Following NVLM-D's reference (its Hugging Face model code, which tiles with InternVL's
``dynamic_preprocess``): the tile grid (cols x rows, at most ``max_tiles`` tiles) is the one whose
aspect ratio is closest to the image's; on a tie the larger grid wins while the image has more
than half its area in pixels. The image is resized to that grid (not keeping aspect) and cut
row-major; when there is more than one tile a global thumbnail (the whole image at the base size)
follows them. Before each tile's tokens the text gets a plain tag ``<tile_1>`` ... ``<tile_k>``,
and ``<tile_global_thumbnail>`` before the thumbnail's; a single-tile image is tagged as the
thumbnail alone (NVLM-D: ``range(1, num_patches)`` tags, then the thumbnail tag). The tags are
ordinary text, tokenized like any other. NVLM-D also wraps the whole in ``<Image>...</Image>``;
we don't, the chat template places the image.
"""

from __future__ import annotations

from typing import Any

from transformers import GotOcr2ImageProcessor

from vlm.highres.base import HIGH_RES, HighRes, ImageSize, no_aspect

THUMBNAIL_TAG = "<tile_global_thumbnail>"


def tile_grid(image_size: ImageSize, tile_size: int, max_tiles: int) -> tuple[int, int]:
    """Tiles (rows, cols) for an image of (height, width), as NVLM-D/InternVL choose them."""
    height, width = image_size
    aspect = width / height
    # candidate (cols, rows) grids, fewest tiles first (cols-major among equals, as transformers' InternVL)
    grids = sorted(
        ((c, r) for c in range(1, max_tiles + 1) for r in range(1, max_tiles + 1) if c * r <= max_tiles),
        key=lambda grid: grid[0] * grid[1],
    )
    best, best_diff = (1, 1), float("inf")
    for cols, rows in grids:
        diff = abs(aspect - cols / rows)
        if diff < best_diff:
            best, best_diff = (cols, rows), diff
        elif diff == best_diff and width * height > 0.5 * tile_size * tile_size * cols * rows:
            best = (cols, rows)
    return best[1], best[0]


def tile_tags(tile_count: int) -> list[str]:
    """The tag before each base-size image, tiles first, thumbnail last."""
    return [f"<tile_{i}>" for i in range(1, tile_count)] + [THUMBNAIL_TAG]


@HIGH_RES.register("tiles")
class Tiles(HighRes):
    def check(self) -> None:
        if not isinstance(self.layout.max_tiles, int) or self.layout.max_tiles < 1:
            raise ValueError(f"max_tiles must be a positive integer, got {self.layout.max_tiles!r}")

    def tile_count(self, image_size: ImageSize | None) -> int:
        if image_size is None:
            raise ValueError("high_res='tiles' needs each image's size (image_sizes from the processor)")
        rows, cols = tile_grid((int(image_size[0]), int(image_size[1])), self.layout.tile_size, self.layout.max_tiles)
        return rows * cols + (1 if rows * cols > 1 else 0)

    def most_tokens(self) -> int:
        max_tiles = self.layout.max_tiles
        return (max_tiles + (1 if max_tiles > 1 else 0)) * self.layout.tile_tokens

    def placeholder(self, image_size: ImageSize | None, image_token: str) -> str:
        run = image_token * self.layout.tile_tokens
        return "".join(tag + run for tag in tile_tags(self.tile_count(image_size)))

    def image_processor(self, normalisation: dict[str, Any], aspect: str) -> GotOcr2ImageProcessor:
        no_aspect("tiles", aspect)
        base = self.layout.tile_size
        return GotOcr2ImageProcessor(
            size={"height": base, "width": base},
            crop_to_patches=True,
            min_patches=1,
            max_patches=self.layout.max_tiles,
            **normalisation,
        )
