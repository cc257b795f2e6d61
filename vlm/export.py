"""Export to the native transformers `LlavaForConditionalGeneration` format, or for anyres models
`LlavaNextForConditionalGeneration`, when the parts allow it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from transformers import (
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaNextConfig,
    LlavaNextForConditionalGeneration,
    LlavaNextProcessor,
    LlavaProcessor,
)

from vlm.lm import head_blockers
from vlm.modeling import VLMForConditionalGeneration
from vlm.processing import VLMProcessor
from vlm.registry import Registry
from vlm.vision.encoder import encoder_class

LLAVA_VISION_TYPES = ("clip_vision_model", "siglip_vision_model")
LLAVA_PROJECTORS = ("linear", "mlp2x_gelu")
class NotExportableError(ValueError):
    """The model's parts have no faithful representation in the target format."""


def llava_blockers(model: VLMForConditionalGeneration) -> list[str]:
    """Every reason the model can't be written as `LlavaForConditionalGeneration` (empty when it can)."""
    reasons = _parts_blockers(model)
    if model.config.high_res != "none":
        reasons.append(
            f"high_res={model.config.high_res!r} turns an image into several tiles; Llava takes one image "
            "(anyres exports as LlavaNext)"
        )
    return reasons


def _parts_blockers(model: VLMForConditionalGeneration) -> list[str]:
    """Reasons the encoder, projector or LLM have no place in the Llava family (Llava, LlavaNext)."""
    config, reasons = model.config, []
    if config.vision_config.model_type not in LLAVA_VISION_TYPES:
        reasons.append(
            f"vision encoder {config.vision_config.model_type!r} is not a transformers tower Llava builds "
            f"({', '.join(LLAVA_VISION_TYPES)})"
        )
    if config.projector_type not in LLAVA_PROJECTORS:
        reasons.append(
            f"projector {config.projector_type!r} has no Llava equivalent (Llava has {', '.join(LLAVA_PROJECTORS)})"
        )
    if config.s2_scales:
        reasons.append(
            f"S2 multi-scale features (s2_scales={config.s2_scales}) have no Llava equivalent: Llava runs "
            "its vision tower once, at one resolution"
        )
    reasons += [f"{reason}; Llava's head is a plain lm_head" for reason in head_blockers(model.language_model)]
    return reasons


def llava_next_blockers(model: VLMForConditionalGeneration) -> list[str]:
    """Every reason the model can't be written as `LlavaNextForConditionalGeneration` (empty when it can)."""
    config = model.config
    reasons = _parts_blockers(model)
    if config.high_res != "anyres":
        reasons.append(f"high_res={config.high_res!r}: LlavaNext tiles images the anyres way only")
    tower_size = getattr(config.vision_config, "image_size", None)  # NaFlex (SigLIP2) configs have none
    if config.image_size != tower_size:
        reasons.append(
            f"image_size={config.image_size} differs from the vision tower's ({tower_size}), "
            "which LlavaNext takes as its tile size"
        )
    return reasons


def export_llava(model: VLMForConditionalGeneration, processor: VLMProcessor, out: str | Path) -> Path:
    """Write ``out`` so plain transformers loads it with `LlavaForConditionalGeneration`/`AutoProcessor`."""
    if reasons := llava_blockers(model):
        raise NotExportableError("cannot export to Llava: " + "; ".join(reasons))
    return _write(model, processor, out, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor)


def export_llava_next(model: VLMForConditionalGeneration, processor: VLMProcessor, out: str | Path) -> Path:
    """Write ``out`` so plain transformers loads it with `LlavaNextForConditionalGeneration`/`AutoProcessor`."""
    if reasons := llava_next_blockers(model):
        raise NotExportableError("cannot export to LlavaNext: " + "; ".join(reasons))
    pinpoints = [list(p) for p in model.config.image_grid_pinpoints]
    return _write(
        model, processor, out, LlavaNextConfig, LlavaNextForConditionalGeneration, LlavaNextProcessor,
        image_grid_pinpoints=pinpoints,
    )


# The transformers classes we export to, tried in order; the first the model's parts fit is used.
HF_TARGETS: Registry[tuple[Callable, Callable]] = Registry("export target")
HF_TARGETS.register("LlavaForConditionalGeneration", (llava_blockers, export_llava))
HF_TARGETS.register("LlavaNextForConditionalGeneration", (llava_next_blockers, export_llava_next))


def export_hf(
    model: VLMForConditionalGeneration, processor: VLMProcessor, out: str | Path, target: str | None = None
) -> tuple[Path, str]:
    """Export to ``target`` (an `HF_TARGETS` key), or to whichever transformers class fits the parts;
    returns the folder and the class name. Raises `NotExportableError` listing, for every target tried,
    why the model is not representable."""
    why: dict[str, list[str]] = {}
    for name in [HF_TARGETS.get(target) and target] if target else HF_TARGETS:
        blockers, export = HF_TARGETS.get(name)
        why[name] = blockers(model)
        if not why[name]:
            return export(model, processor, out), name
    raise NotExportableError(
        "cannot export to transformers' native format, the model stays in the vlm format: "
        + " | ".join(f"as {name}: {'; '.join(reasons)}" for name, reasons in why.items())
    )


def _write(
    model: VLMForConditionalGeneration,
    processor: VLMProcessor,
    out: str | Path,
    config_class: type,
    model_class: type,
    processor_class: type,
    **target_config,
) -> Path:
    config = model.config
    prefix_tokens = encoder_class(config).num_prefix_tokens(config)
    # Llava's "default" always drops exactly one token; ours drops the family's prefix (none for SigLIP).
    strategy = (
        "default" if config.vision_feature_select_strategy == "default" and prefix_tokens == 1 else "full"
    )
    if config.vision_feature_select_strategy == "default" and prefix_tokens not in (0, 1):
        raise NotExportableError(f"cannot export to Llava: the encoder has {prefix_tokens} prefix tokens")
    linear = config.projector_type == "linear"
    hf_config = config_class(
        vision_config=config.vision_config.to_dict(),
        text_config=config.text_config.to_dict(),
        image_token_index=config.image_token_id,
        image_seq_length=config.image_seq_length,
        projector_hidden_act="linear" if linear else "gelu",
        vision_feature_select_strategy=strategy,
        vision_feature_layer=config.vision_feature_layer,
        multimodal_projector_bias=config.projector_bias,
        # a tied LM's head is saved once, as its embedding; LlavaNext (unlike Llava) doesn't read this from text_config
        tie_word_embeddings=bool(getattr(config.text_config, "tie_word_embeddings", False)),
        dtype=config.dtype,
        **target_config,
    )
    with torch.device("meta"):
        hf_model = model_class(hf_config)
    hf_model.load_state_dict(_llava_state_dict(model, linear), strict=True, assign=True)
    hf_model.generation_config = model.generation_config
    out = Path(out)
    hf_model.save_pretrained(out)

    vision = config.vision_config
    processor_class(
        image_processor=processor.image_processor,
        tokenizer=processor.tokenizer,
        patch_size=vision.patch_size,
        vision_feature_select_strategy=strategy,
        chat_template=processor.chat_template,
        image_token=processor.image_token,
        num_additional_image_tokens=prefix_tokens,
    ).save_pretrained(out)
    return out


def _llava_state_dict(model: VLMForConditionalGeneration, linear: bool) -> dict[str, torch.Tensor]:
    lm = model.language_model
    base = f"{lm.base_model_prefix}."
    state: dict[str, torch.Tensor] = {}
    for name, tensor in model.vision_tower.model.state_dict().items():
        state[f"model.vision_tower.{name}"] = tensor
    for name, tensor in model.projector.state_dict().items():
        state[f"model.multi_modal_projector.{name}"] = tensor
    if linear:  # a linear projector is linear_1 followed by an identity linear_2 and no activation
        width = model.projector.out_dim
        ref = model.projector.linear_1.weight
        state["model.multi_modal_projector.linear_2.weight"] = torch.eye(width, dtype=ref.dtype)
        if model.config.projector_bias:
            state["model.multi_modal_projector.linear_2.bias"] = torch.zeros(width, dtype=ref.dtype)
    for name, tensor in lm.state_dict().items():
        if name.startswith(base):
            state[f"model.language_model.{name[len(base) :]}"] = tensor
    state["lm_head.weight"] = lm.get_output_embeddings().weight
    if getattr(model, "image_newline", None) is not None:
        state["model.image_newline"] = model.image_newline
    return {k: v.detach() for k, v in state.items()}
