"""The processor: image transforms + tokenizer + chat template, expanding `<image>` to the model's count."""

from __future__ import annotations

from typing import Any, Literal

from transformers import PreTrainedTokenizerBase, ProcessorMixin
from transformers.image_processing_utils import BaseImageProcessor
from transformers.image_utils import get_image_size, make_flat_list_of_images, to_numpy_array

from vlm.layout import ImageLayout
from vlm.templates import IMAGE_TOKEN
from vlm.vision.sources import Normalisation, vision_source

AspectMode = Literal["pad", "resize", "crop"]


class VLMProcessor(ProcessorMixin):
    """Turns conversations and images into ``input_ids``, ``attention_mask`` and ``pixel_values``.

    Each ``<image>`` marker becomes the placeholder text of ``image_layout`` (a
    `vlm.layout.ImageLayout` as a dict; without one, ``image_seq_length`` image tokens): for
    ``high_res`` anyres/tiles that depends on the image's size, and ``image_sizes`` (height, width)
    are returned too. The base class checks that markers and images agree in number and names both
    counts when not.
    """

    def __init__(
        self,
        image_processor=None,
        tokenizer=None,
        chat_template: str | None = None,
        image_token: str = IMAGE_TOKEN,
        image_seq_length: int = 1,
        image_layout: dict[str, Any] | None = None,
        **kwargs,
    ):
        self.image_token = image_token
        self.image_seq_length = image_seq_length
        self.image_layout = image_layout
        self.layout = ImageLayout(**image_layout) if image_layout else ImageLayout(tile_tokens=image_seq_length)
        self.image_token_id = tokenizer.convert_tokens_to_ids(image_token)
        super().__init__(image_processor, tokenizer, chat_template=chat_template)

    @property
    def unused_input_names(self) -> list[str]:
        return ["num_patches"]  # the tiles image processor's per-image count; image_sizes carry it

    def _process_images(self, images, **kwargs) -> tuple[Any, list[str]]:
        processed = self.image_processor(images, **kwargs)
        flat = make_flat_list_of_images(images)
        if self.layout.strategy.sized and "image_sizes" not in processed:
            processed["image_sizes"] = [list(get_image_size(to_numpy_array(image))) for image in flat]
        return processed, [self.replace_image_token(processed, i) for i in range(len(flat))]

    def replace_image_token(self, image_inputs: dict, image_idx: int, **kwargs) -> str:
        sizes = image_inputs.get("image_sizes")
        size = None if sizes is None else (int(sizes[image_idx][0]), int(sizes[image_idx][1]))
        return self.layout.strategy.placeholder(size, self.image_token)


def image_processor_from(
    source: str | Normalisation, image_size: int, aspect: AspectMode = "pad", layout: ImageLayout | None = None
) -> BaseImageProcessor:
    """The ``layout``'s image processor (one ``image_size`` image by default, see `vlm.highres`)
    with the encoder's own resampling and normalisation: ``source``'s, or that of the vision part it
    names (a folder, tiny key or ``open_clip:``/``timm:`` reference, `vlm.vision.sources`)."""
    normalisation = source if isinstance(source, Normalisation) else vision_source(source).normalisation
    layout = layout or ImageLayout(tile_size=image_size)
    return layout.strategy.image_processor(normalisation.to_dict(), aspect)


def add_image_token(tokenizer: PreTrainedTokenizerBase, image_token: str = IMAGE_TOKEN) -> int:
    """Add the image placeholder as a special token (no-op when present); returns its id."""
    if image_token not in tokenizer.get_vocab():
        tokenizer.add_special_tokens(
            {"extra_special_tokens": [image_token]}, replace_extra_special_tokens=False
        )
    return tokenizer.convert_tokens_to_ids(image_token)
