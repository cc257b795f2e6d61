"""The processor: image transforms + tokenizer + chat template, expanding `<image>` to the model's count."""

from __future__ import annotations

from typing import Literal

from transformers import AutoImageProcessor, LlavaImageProcessor, PreTrainedTokenizerBase, ProcessorMixin

from vlm.templates import IMAGE_TOKEN

AspectMode = Literal["pad", "resize", "crop"]


class VLMProcessor(ProcessorMixin):
    """Turns conversations and images into ``input_ids``, ``attention_mask`` and ``pixel_values``.

    Each ``<image>`` marker becomes ``image_seq_length`` copies of the image token; the base
    class checks that markers and images agree in number and names both counts when not.
    """

    def __init__(
        self,
        image_processor=None,
        tokenizer=None,
        chat_template: str | None = None,
        image_token: str = IMAGE_TOKEN,
        image_seq_length: int = 1,
        **kwargs,
    ):
        self.image_token = image_token
        self.image_seq_length = image_seq_length
        self.image_token_id = tokenizer.convert_tokens_to_ids(image_token)
        super().__init__(image_processor, tokenizer, chat_template=chat_template)

    def replace_image_token(self, image_inputs: dict, image_idx: int, **kwargs) -> str:
        return self.image_token * self.image_seq_length


def image_processor_from(source_dir: str, image_size: int, aspect: AspectMode = "pad") -> LlavaImageProcessor:
    """An image processor with the encoder's own normalisation, sized for ``image_size``.

    ``pad``: pad to square with the mean colour, then resize (LLaVA-1.5). ``resize``: squash to
    a square. ``crop``: resize the short side and centre-crop (CLIP's own preprocessing).
    """
    source = AutoImageProcessor.from_pretrained(source_dir)
    square = {"height": image_size, "width": image_size}
    shortest = {"shortest_edge": image_size}
    return LlavaImageProcessor(
        do_pad=aspect == "pad",
        size=square if aspect == "resize" else shortest,
        do_center_crop=aspect != "resize",
        crop_size=square,
        resample=source.resample,
        image_mean=list(source.image_mean),
        image_std=list(source.image_std),
        rescale_factor=source.rescale_factor,
    )


def add_image_token(tokenizer: PreTrainedTokenizerBase, image_token: str = IMAGE_TOKEN) -> int:
    """Add the image placeholder as a special token (no-op when present); returns its id."""
    if image_token not in tokenizer.get_vocab():
        tokenizer.add_special_tokens(
            {"extra_special_tokens": [image_token]}, replace_extra_special_tokens=False
        )
    return tokenizer.convert_tokens_to_ids(image_token)
