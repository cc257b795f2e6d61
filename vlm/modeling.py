"""The assembled VLM: vision encoder -> projector -> any causal LM, as a transformers model.

Each `<image>` marker in the text has been expanded by the processor into the placeholder tokens
`vlm.layout.ImageLayout.num_tokens` gives for that image (`config.image_seq_length` per base-size
image; per image size for ``high_res`` anyres/tiles); the projected image features are written into
exactly those positions before the language model runs.
"""

from __future__ import annotations

import logging
import math

import torch
from torch import nn
from transformers import AutoModel, AutoModelForCausalLM, GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.cache_utils import Cache
from transformers.modeling_outputs import CausalLMOutputWithPast

from vlm.attention import (
    ATTN_IMPLEMENTATIONS,
    attn_support,
    attn_unavailable,
    check_attn_name,
    require_attn_implementation,
)
from vlm.config import VLMConfig
from vlm.layout import image_layout, token_grid
from vlm.lm import base_model, head_blockers
from vlm.losses import fused_linear_cross_entropy
from vlm.projectors.base import PROJECTORS, Projector
from vlm.vision.base import layer_classes
from vlm.vision.encoder import encoder_class

logger = logging.getLogger(__name__)


def new_projector(config: VLMConfig) -> Projector:
    """A freshly initialised projector from the encoder's width (on its token grid) to the LLM's."""
    return PROJECTORS.get(config.projector_type)(
        encoder_class(config).out_channels(config),
        config.text_config.hidden_size,
        bias=config.projector_bias,
        grid=token_grid(config),
    )


def check_attn_support(config: VLMConfig, name: str) -> None:
    """Raise ``ValueError`` unless ``name`` is a known attention implementation that the LLM and the vision
    tower both run (a tower whose family has no attention choice, e.g. ConvNeXt, accepts any)."""
    check_attn_name(name)
    text = config.text_config
    try:
        lm_class = AutoModelForCausalLM._model_mapping[type(text)]
    except KeyError:  # an LM transformers' mapping does not know (remote code): it checks itself when built
        lm_class = None
    if lm_class is not None and name not in attn_support(lm_class):
        raise ValueError(
            f"the LLM ({text.model_type}, {lm_class.__name__}) cannot run attn_implementation={name!r}; "
            f"it runs {', '.join(attn_support(lm_class))}"
        )
    vision = encoder_class(config).attn_implementations(config)
    if vision is not None and name not in vision:
        raise ValueError(
            f"the vision tower ({config.vision_config.model_type}) cannot run attn_implementation={name!r}; "
            f"it runs {', '.join(vision)}"
        )


def _choose_attention(config: VLMConfig) -> None:
    """Check an explicitly requested attention implementation against the parts and this machine; with
    none requested, apply the config's ``default_attn_implementation`` when this machine can run it (else
    warn and leave transformers' default, sdpa)."""
    requested = config._attn_implementation
    if requested is None and config.default_attn_implementation:
        preferred = config.default_attn_implementation
        if reason := attn_unavailable(preferred):
            logger.warning("this model was built for attn_implementation=%r, which cannot run here (%s); "
                           "using transformers' default (sdpa)", preferred, reason)
            return
        config._attn_implementation = requested = preferred  # also sets it on the sub-configs
    if isinstance(requested, str) and requested in ATTN_IMPLEMENTATIONS:
        check_attn_support(config, requested)
        require_attn_implementation(requested)


def import_part_modules(config: VLMConfig) -> None:
    """Import the LLM's and the vision tower's modeling code before any DeepSpeed ``zero.Init`` is entered.
    A class first defined inside ``zero.Init`` has its ``__init__`` recorded by DeepSpeed at definition and
    restored on exit, which silently drops class decorators applied after definition (transformers' hub
    kernels wrap ``LlamaAttention.__init__`` this way; its forward then fails on a missing attribute)."""
    encoder_class(config)
    for auto, sub in ((AutoModelForCausalLM, config.text_config), (AutoModel, config.vision_config)):
        if type(sub) in auto._model_mapping:  # else ours or remote code, imported already or with the model
            auto._model_mapping[type(sub)]


def no_split_modules(vision_tower: nn.Module, language_model: nn.Module) -> set[str]:
    """Class names `device_map` must keep whole: the encoder's layers and the LLM's (its own declaration,
    else its repeated layers)."""
    declared = getattr(language_model, "_no_split_modules", None)
    return set(vision_tower.no_split_modules()) | set(declared or layer_classes(language_model))


class ImageTokenMismatchError(ValueError):
    """The number of image placeholder tokens does not match the images given."""


def _count_mismatch(n_placeholders: int, expected: list[int], sized: bool) -> str:
    if not sized and expected:
        per = expected[0]
        need = f"i.e. {n_placeholders / per:g} <image> markers at {per} tokens each, but {len(expected)} images were given"
    else:
        need = f"but the {len(expected)} images given need {sum(expected)} ({', '.join(map(str, expected))} by their sizes)"
    return (
        f"The text holds {n_placeholders} image placeholder tokens, {need}. Build inputs with the model's "
        "processor, which expands each <image> marker to the right count."
    )


class VLMPreTrainedModel(PreTrainedModel):
    config_class = VLMConfig
    config: VLMConfig
    base_model_prefix = ""
    input_modalities = ("image", "text")
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True

    @classmethod
    def get_init_context(cls, *args, **kwargs) -> list:
        config = kwargs.get("config") or next((a for a in args if isinstance(a, VLMConfig)), None)
        if config is not None:
            import_part_modules(config)
        return super().get_init_context(*args, **kwargs)

    @classmethod
    def _from_config(cls, config: VLMConfig, **kwargs) -> VLMPreTrainedModel:
        import_part_modules(config)
        return super()._from_config(config, **kwargs)

    def _init_weights(self, module: nn.Module) -> None:
        # Sub-models initialise themselves; only our own projector layers (and anyres' newline) are set here.
        if module is self and getattr(self, "image_newline", None) is not None:
            init.normal_(self.image_newline, mean=0.0, std=1 / math.sqrt(self.config.text_config.hidden_size))
        if isinstance(module, nn.Linear) and any(module is m for m in self._projector_modules()):
            std = getattr(self.config.text_config, "initializer_range", 0.02)
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def _projector_modules(self) -> list[nn.Module]:
        projector = getattr(self, "projector", None)
        return list(projector.modules()) if projector is not None else []


class VLMForConditionalGeneration(VLMPreTrainedModel, GenerationMixin):
    """Vision tower, projector and language model; `generate()` works as for any causal LM."""

    def __init__(self, config: VLMConfig):
        _choose_attention(config)
        super().__init__(config)
        self.vision_tower = encoder_class(config)(config)
        self.projector = new_projector(config)
        if image_layout(config).strategy.uses_newline:  # anyres: a learned embedding ends every row of tiles
            self.image_newline = nn.Parameter(torch.empty(config.text_config.hidden_size))
        self.language_model = AutoModelForCausalLM.from_config(config.text_config)
        # whole layers per device under device_map="auto" (post_init adds what the children declare)
        self._no_split_modules = no_split_modules(self.vision_tower, self.language_model)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.language_model.get_output_embeddings()

    def set_output_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_output_embeddings(value)

    def get_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Pixels (n_images, 3, H, W) -> projected features (n_images, tokens_per_image, d_llm)."""
        dtype = next(self.vision_tower.parameters()).dtype
        return self.projector(self.vision_tower(pixel_values.to(dtype)))

    def image_features(
        self, pixel_values: torch.Tensor, image_sizes: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        """Each image's tokens ``(n_i, d_llm)`` in placeholder order: its base-size tiles encoded and
        projected together, then assembled by the ``high_res`` strategy (`vlm.highres`)."""
        layout = image_layout(self.config)
        sizes = layout.sizes(image_sizes, pixel_values.shape[0])
        tiles = self.get_image_features(layout.stack_tiles(pixel_values, sizes))
        if tiles.shape[1] != layout.tile_tokens:
            raise ImageTokenMismatchError(
                f"The encoder and projector produce {tiles.shape[1]} tokens per image but the config says "
                f"image_seq_length={layout.tile_tokens}; the config does not describe these parts."
            )
        newline = getattr(self, "image_newline", None)
        per_image = tiles.split([layout.tile_count(size) for size in sizes])
        return [layout.strategy.assemble(t, size, newline) for t, size in zip(per_image, sizes, strict=True)]

    def _scatter_image_features(
        self,
        input_ids: torch.Tensor,
        inputs_embeds: torch.Tensor,
        pixel_values: torch.Tensor,
        image_sizes: torch.Tensor | None = None,
    ) -> torch.Tensor:
        mask = input_ids == self.config.image_token_id
        n_placeholders = int(mask.sum())
        layout = image_layout(self.config)
        expected = [layout.num_tokens(size) for size in layout.sizes(image_sizes, pixel_values.shape[0])]
        if n_placeholders != sum(expected):
            raise ImageTokenMismatchError(_count_mismatch(n_placeholders, expected, layout.strategy.sized))
        features = self.image_features(pixel_values, image_sizes)
        for i, (image, count) in enumerate(zip(features, expected, strict=True)):
            if image.shape[0] != count:
                raise ImageTokenMismatchError(
                    f"Image {i} was assembled into {image.shape[0]} tokens but its layout says {count}; "
                    "the config does not describe these parts."
                )
        features = torch.cat(features).to(inputs_embeds.device, inputs_embeds.dtype)
        return inputs_embeds.masked_scatter(mask.unsqueeze(-1), features)

    def _supervised_forward(
        self,
        inputs_embeds: torch.Tensor,
        attention_mask: torch.Tensor | None,
        position_ids: torch.LongTensor | None,
        labels: torch.LongTensor | None,
        num_items_in_batch: torch.Tensor | int | None = None,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        """Training forward that runs the LM head only where a next token is supervised.

        Image and prompt positions need no logits; skipping them saves the vocabulary projection
        and the cross-entropy there (most of a LLaVA row). When the LM's logits are a plain
        ``lm_head(hidden)`` (`vlm.lm.head_blockers`), the head and the loss run fused, chunk by chunk
        (`vlm.losses`), and no logits are kept; otherwise the LM's own ``logits_to_keep`` selects the
        positions (so any logit post-processing stays the LM's) and ``logits`` holds those columns.
        Either way the loss equals the LM's own: float32 cross-entropy summed over supervised tokens,
        divided by ``num_items_in_batch`` (else by their count).
        """
        if labels is None:
            raise ValueError("logits_to_keep='supervised' needs labels")
        targets = labels[:, 1:]
        lm = self.language_model
        head = lm.get_output_embeddings()
        if self._fused_loss(head):
            out = base_model(lm)(inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                                 position_ids=position_ids, use_cache=False, **kwargs)
            supervised = targets != -100
            hidden = out.last_hidden_state[:, :-1][supervised]
            loss = fused_linear_cross_entropy(hidden, head.weight, targets[supervised])
            count = supervised.sum()
            out = CausalLMOutputWithPast(logits=None)
        else:
            keep = (targets != -100).any(dim=0).nonzero().squeeze(-1)
            out = lm(inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=position_ids,
                     logits_to_keep=keep, use_cache=False, **kwargs)
            logits = out.logits.float()
            picked = targets[:, keep]
            loss = nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), picked.reshape(-1), ignore_index=-100, reduction="sum"
            )
            count = (picked != -100).sum()
        out.loss = loss / (num_items_in_batch if num_items_in_batch is not None else count)
        return out

    def _fused_loss(self, head: nn.Module) -> bool:
        """Whether the fused head + loss applies: a plain head whose weight is an ordinary local tensor
        (ZeRO-3 and FSDP hold it partitioned outside the head's own forward)."""
        weight = getattr(head, "weight", None)
        plain_tensor = type(weight) in (torch.Tensor, nn.Parameter) and not hasattr(weight, "ds_id")
        return plain_tensor and not self.fused_loss_blockers()

    def fused_loss_blockers(self) -> list[str]:
        if not hasattr(self, "_head_blockers"):
            self._head_blockers = head_blockers(self.language_model)
        return self._head_blockers

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        logits_to_keep: int | torch.Tensor | str = 0,
        image_sizes: torch.Tensor | None = None,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        """``logits_to_keep="supervised"`` (training, with ``labels``): logits and loss only where a
        next token is supervised; see `_supervised_forward`. ``image_sizes`` (n_images, 2): each
        image's (height, width), which ``high_res`` anyres/tiles need (the processor returns them)."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of input_ids or inputs_embeds.")
        if "past_key_values" in kwargs:
            cache = kwargs.pop("past_key_values")
        if inputs_embeds is None:
            inputs_embeds = self.get_input_embeddings()(input_ids)
            prefill = cache is None or cache.get_seq_length() == 0
            if pixel_values is not None:
                inputs_embeds = self._scatter_image_features(input_ids, inputs_embeds, pixel_values, image_sizes)
            elif prefill and bool((input_ids == self.config.image_token_id).any()):
                n = int((input_ids == self.config.image_token_id).sum())
                raise ImageTokenMismatchError(
                    f"The text holds {n} image placeholder tokens but no images were given."
                )
            if labels is not None:
                labels = labels.masked_fill(input_ids == self.config.image_token_id, -100)
        elif pixel_values is not None:
            raise ValueError("pixel_values need input_ids to locate the image placeholder tokens.")
        if isinstance(logits_to_keep, str):
            if logits_to_keep != "supervised":
                raise ValueError(f"logits_to_keep is an int, an index tensor or 'supervised', not {logits_to_keep!r}")
            return self._supervised_forward(inputs_embeds, attention_mask, position_ids, labels, **kwargs)
        return self.language_model(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            labels=labels,
            logits_to_keep=logits_to_keep,
            **kwargs,
        )
