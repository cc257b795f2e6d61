"""``high_res="none"``: one base-size image per ``<image>`` (LLaVA-1.5)."""

from __future__ import annotations

from typing import Any

from transformers import LlavaImageProcessor

from vlm.highres.base import HIGH_RES, HighRes, ImageSize


@HIGH_RES.register("none")
class SingleImage(HighRes):
    """``pad``: pad to square with the mean colour, then resize (LLaVA-1.5). ``resize``: squash to a
    square. ``crop``: resize the short side and centre-crop (CLIP's own preprocessing)."""

    sized = False

    def tile_count(self, image_size: ImageSize | None) -> int:
        return 1

    def most_tokens(self) -> int:
        return self.layout.tile_tokens

    def image_processor(self, normalisation: dict[str, Any], aspect: str) -> LlavaImageProcessor:
        size = self.layout.tile_size
        square = {"height": size, "width": size}
        return LlavaImageProcessor(
            do_pad=aspect == "pad",
            size=square if aspect == "resize" else {"shortest_edge": size},
            do_center_crop=aspect != "resize",
            crop_size=square,
            **normalisation,
        )
