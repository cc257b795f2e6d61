"""A summary of a saved VLM folder: parts, parameter counts per part, tokens per image."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoConfig

from vlm.config import VLMConfig
from vlm.modeling import VLMForConditionalGeneration
from vlm.vision.encoder import encoder_class


def describe(path: str | Path) -> dict:
    """Reads only the config; counts parameters on a meta-device copy, so it is instant even for 7B."""
    config = AutoConfig.from_pretrained(path)
    if not isinstance(config, VLMConfig):
        raise ValueError(f"{path} holds a {type(config).__name__}, not a vlm model folder")
    with torch.device("meta"):
        model = VLMForConditionalGeneration(config)
    vision, text = config.vision_config, config.text_config
    encoder = encoder_class(config)
    rows, cols = encoder.grid(config, config.image_size)
    parts = {
        "vision_tower": f"{vision.model_type} ({encoder.out_channels(config)} channels, {rows}x{cols} grid, "
        f"layer(s) {config.vision_feature_layer}, {config.vision_feature_select_strategy})",
        "projector": config.projector_type,
        "language_model": f"{text.model_type} (hidden {text.hidden_size}, layers {text.num_hidden_layers}, "
        f"vocab {text.vocab_size})",
    }
    params = {name: sum(p.numel() for p in getattr(model, name).parameters()) for name in parts}
    return {
        "path": str(path),
        "parts": parts,
        "parameters": params,
        "total_parameters": sum(params.values()),
        "image_size": config.image_size,
        "tokens_per_image": config.image_seq_length,
        "image_token_id": config.image_token_id,
    }


def format_info(info: dict) -> str:
    lines = [f"model: {info['path']}"]
    for name, desc in info["parts"].items():
        lines.append(f"  {name:<15} {info['parameters'][name]:>14,} params  {desc}")
    lines.append(f"  {'total':<15} {info['total_parameters']:>14,} params")
    lines.append(f"  image size {info['image_size']} px -> {info['tokens_per_image']} tokens per image")
    return "\n".join(lines)
