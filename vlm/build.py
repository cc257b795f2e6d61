"""Assemble an untrained VLM (pretrained encoder + fresh projector + pretrained LLM) and its processor."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedConfig

from vlm.attention import check_attn_name, require_attn_implementation
from vlm.config import VLMConfig
from vlm.highres.base import HIGH_RES
from vlm.hub import resolve_part
from vlm.layout import image_layout, tokens_per_image
from vlm.modeling import VLMForConditionalGeneration, check_attn_support, new_projector
from vlm.processing import AspectMode, VLMProcessor, add_image_token, image_processor_from
from vlm.projectors.base import PROJECTORS
from vlm.templates import CHAT_TEMPLATES, IMAGE_TOKEN
from vlm.vision.encoder import encoder_class
from vlm.vision.fused import fused_vision_config
from vlm.vision.sources import VisionSource, vision_source


@dataclass
class BuildSpec:
    """What to assemble. ``vision`` and ``llm`` are registry keys, local folders or hub ids; ``vision``
    may also be ``open_clip:…`` or ``timm:…`` (`vlm.vision.sources` lists the forms).

    ``vision_overrides`` are set on the loaded vision config before the encoder is built, e.g.
    ``{"stage5_depth": 6, "stage5_hidden_size": 3072}`` for ConvLLaVA's fifth ConvNeXt stage.
    ``s2_scales`` runs the encoder at several image sizes (S², `vlm.vision.s2`), e.g. ``[336, 672, 1008]``;
    the first is the encoder's tile size, the processor then delivers the last.
    ``high_res`` (`vlm.highres`): ``"anyres"`` tiles like LLaVA-NeXT over ``image_grid_pinpoints``
    ((height, width) in multiples of the image size; LLaVA-NeXT's scaled when omitted), ``"tiles"``
    like NVLM-D into at most ``max_tiles`` tiles with text tile tags.
    ``attn_implementation`` (`vlm.attention`: eager | sdpa | flash_attention_2 | flex_attention) is given to
    the LLM and to the vision tower where its family has an attention choice (transformers towers; ConvNeXt,
    open_clip and timm towers keep their own); None leaves transformers' default (sdpa where supported).
    The folder keeps the choice (``default_attn_implementation``): later loads use it where it can run.
    """

    vision: str = "tiny-clip"
    projector: str = "mlp2x_gelu"
    llm: str = "tiny-llama"
    template: str | None = None
    vision_feature_layer: int | list[int] = -2
    vision_feature_select_strategy: str = "default"
    image_size: int | None = None
    aspect: AspectMode = "pad"
    dtype: str = "float32"
    seed: int = 0
    vision_overrides: dict[str, int | float | str] = field(default_factory=dict)
    s2_scales: list[int] | None = None
    high_res: str = "none"
    image_grid_pinpoints: list[list[int]] | None = None
    max_tiles: int = 6
    attn_implementation: str | None = None


def resolve_vision(spec: BuildSpec) -> tuple[list[VisionSource], PreTrainedConfig]:
    """The spec's vision sources and its vision sub-config, ``vision_overrides`` applied; no weights are read."""
    # "a+b" fuses encoders (channel concat on a shared grid); each member resolves like a single vision
    sources = [vision_source(v) for v in spec.vision.split("+")]
    vision_config = sources[0].config if len(sources) == 1 else fused_vision_config(sources)
    for key, value in spec.vision_overrides.items():
        setattr(vision_config, key, value)
    return sources, vision_config


def spec_config(
    spec: BuildSpec, vision_config: PreTrainedConfig, text_config: PreTrainedConfig, image_token_id: int | None
) -> VLMConfig:
    """The model config of ``spec`` over resolved parts, with its tokens per image. Raises ``ValueError``
    when the parts don't fit together (token grid, feature layers, ``high_res`` settings, attention)."""
    if spec.attn_implementation is not None:
        check_attn_name(spec.attn_implementation)
    config = VLMConfig(
        vision_config=vision_config,
        text_config=text_config,
        projector_type=spec.projector,
        vision_feature_layer=spec.vision_feature_layer,
        vision_feature_select_strategy=spec.vision_feature_select_strategy,
        image_size=spec.image_size,
        s2_scales=spec.s2_scales,
        high_res=spec.high_res,
        image_grid_pinpoints=spec.image_grid_pinpoints,
        max_tiles=spec.max_tiles,
        image_token=IMAGE_TOKEN,
        image_token_id=image_token_id,
        dtype=getattr(torch, spec.dtype),
        default_attn_implementation=spec.attn_implementation,
    )
    config.image_seq_length = tokens_per_image(config)
    image_layout(config)  # checks the high_res settings against the parts
    if spec.attn_implementation is not None:
        check_attn_support(config, spec.attn_implementation)
    return config


def assemble_config(spec: BuildSpec) -> VLMConfig:
    """The config `build` assembles for ``spec``, from the parts' configs alone: no weights and no tokenizer
    are read (so no image token is added: ``image_token_id`` is None, and the LLM's vocabulary is its own)."""
    _, vision_config = resolve_vision(spec)
    return spec_config(spec, vision_config, AutoConfig.from_pretrained(resolve_part(spec.llm)), image_token_id=None)


def build_on_meta(spec: BuildSpec) -> VLMForConditionalGeneration:
    """The model of ``spec`` on the meta device: every module and parameter shape, no memory and no weights.
    Named shapes (``shape-…``, `vlm.published`) make the papers' models available this way offline."""
    config = assemble_config(spec)
    config.default_attn_implementation = None  # no attention runs on the meta device; this machine need not run it
    with torch.device("meta"):
        return VLMForConditionalGeneration(config).to(getattr(torch, spec.dtype))


def build(spec: BuildSpec) -> tuple[VLMForConditionalGeneration, VLMProcessor]:
    dtype = getattr(torch, spec.dtype)
    sources, vision_config = resolve_vision(spec)
    vision_weights, llm_dir = "+".join(s.weights or "" for s in sources), str(resolve_part(spec.llm))
    PROJECTORS.get(spec.projector)  # fail on an unknown key before loading anything large
    HIGH_RES.get(spec.high_res)
    attention = {}
    if spec.attn_implementation is not None:  # fail before loading anything large
        require_attn_implementation(spec.attn_implementation)
        spec_config(spec, vision_config, AutoConfig.from_pretrained(llm_dir), None)  # the parts must run it
        attention = {"attn_implementation": spec.attn_implementation}
    torch.manual_seed(spec.seed)  # new token rows (resize_token_embeddings) and the projector are random

    tokenizer = AutoTokenizer.from_pretrained(llm_dir)
    chat_template = _chat_template(spec, tokenizer)
    image_token_id = add_image_token(tokenizer)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
    lm = AutoModelForCausalLM.from_pretrained(llm_dir, dtype=dtype, **attention)
    if image_token_id >= lm.get_input_embeddings().num_embeddings:
        lm.resize_token_embeddings(len(tokenizer))

    config = spec_config(spec, vision_config, lm.config, image_token_id)
    if spec.attn_implementation is not None:
        config._attn_implementation = spec.attn_implementation  # the vision tower is built with it too
    layout = image_layout(config)

    # Build the shell on the meta device, then put the loaded parts in: no second copy of the LLM.
    with torch.device("meta"):
        model = VLMForConditionalGeneration(config)
    model.language_model = lm
    model.vision_tower = encoder_class(config)(config, pretrained=vision_weights or None).to(dtype)
    torch.manual_seed(spec.seed)
    model.projector = new_projector(config).to(dtype)
    if hasattr(model, "image_newline"):  # anyres' row-end embedding, initialised as LlavaNext does
        width = lm.config.hidden_size
        model.image_newline = nn.Parameter(torch.randn(width, dtype=dtype) / math.sqrt(width))
    model.generation_config = lm.generation_config
    model.generation_config.pad_token_id = tokenizer.pad_token_id

    image_processor = image_processor_from(sources[0].normalisation, config.image_size, spec.aspect, layout)
    if len(sources) > 1:  # the fused encoder normalises per member; hand it [0, 1] pixels
        image_processor.image_mean, image_processor.image_std = [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]
    processor = VLMProcessor(
        image_processor,
        tokenizer,
        chat_template=chat_template,
        image_seq_length=config.image_seq_length,
        image_layout=layout.to_dict(),
    )
    return model, processor


def _chat_template(spec: BuildSpec, tokenizer) -> str:
    if spec.template is not None:
        return CHAT_TEMPLATES.get(spec.template)
    if tokenizer.chat_template:
        return tokenizer.chat_template
    raise ValueError(
        f"The LLM {spec.llm!r} ships no chat template; choose one with --template "
        f"({', '.join(CHAT_TEMPLATES.keys())})."
    )
