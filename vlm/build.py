"""Assemble an untrained VLM (pretrained encoder + fresh projector + pretrained LLM) and its processor."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from vlm.config import VLMConfig
from vlm.hub import resolve_part
from vlm.layout import tokens_per_image
from vlm.modeling import VLMForConditionalGeneration
from vlm.processing import AspectMode, VLMProcessor, add_image_token, image_processor_from
from vlm.projectors import PROJECTORS
from vlm.templates import CHAT_TEMPLATES, IMAGE_TOKEN
from vlm.vision import encoder_class
from vlm.vision.fused import fused_vision_config
from vlm.vision.hf import load_vision_config


@dataclass
class BuildSpec:
    """What to assemble. ``vision`` and ``llm`` are registry keys, local folders or hub ids.

    ``vision_overrides`` are set on the loaded vision config before the encoder is built, e.g.
    ``{"stage5_depth": 6, "stage5_hidden_size": 3072}`` for ConvLLaVA's fifth ConvNeXt stage.
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


def build(spec: BuildSpec) -> tuple[VLMForConditionalGeneration, VLMProcessor]:
    dtype = getattr(torch, spec.dtype)
    # "a+b" fuses encoders (channel concat on a shared grid); each member resolves like a single vision
    vision_dirs = [str(resolve_part(v)) for v in spec.vision.split("+")]
    vision_dir, llm_dir = "+".join(vision_dirs), str(resolve_part(spec.llm))
    PROJECTORS.get(spec.projector)  # fail on an unknown key before loading anything large
    torch.manual_seed(spec.seed)  # new token rows (resize_token_embeddings) and the projector are random

    tokenizer = AutoTokenizer.from_pretrained(llm_dir)
    chat_template = _chat_template(spec, tokenizer)
    image_token_id = add_image_token(tokenizer)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
    lm = AutoModelForCausalLM.from_pretrained(llm_dir, dtype=dtype)
    if image_token_id >= lm.get_input_embeddings().num_embeddings:
        lm.resize_token_embeddings(len(tokenizer))

    vision_config = load_vision_config(vision_dir) if len(vision_dirs) == 1 else fused_vision_config(vision_dirs)
    for key, value in spec.vision_overrides.items():
        setattr(vision_config, key, value)
    config = VLMConfig(
        vision_config=vision_config,
        text_config=lm.config,
        projector_type=spec.projector,
        vision_feature_layer=spec.vision_feature_layer,
        vision_feature_select_strategy=spec.vision_feature_select_strategy,
        image_size=spec.image_size,
        image_token=IMAGE_TOKEN,
        image_token_id=image_token_id,
        dtype=dtype,
    )
    config.image_seq_length = tokens_per_image(config)

    # Build the shell on the meta device, then put the loaded parts in: no second copy of the LLM.
    with torch.device("meta"):
        model = VLMForConditionalGeneration(config)
    model.language_model = lm
    model.vision_tower = encoder_class(config)(config, pretrained=vision_dir).to(dtype)
    torch.manual_seed(spec.seed)
    projector = PROJECTORS.get(spec.projector)
    in_dim = encoder_class(config).out_channels(config)
    model.projector = projector(in_dim, lm.config.hidden_size, bias=config.projector_bias).to(dtype)
    model.generation_config = lm.generation_config
    model.generation_config.pad_token_id = tokenizer.pad_token_id

    image_processor = image_processor_from(vision_dirs[0], config.image_size, spec.aspect)
    if len(vision_dirs) > 1:  # the fused encoder normalises per member; hand it [0, 1] pixels
        image_processor.image_mean, image_processor.image_std = [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]
    processor = VLMProcessor(
        image_processor,
        tokenizer,
        chat_template=chat_template,
        image_seq_length=config.image_seq_length,
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
