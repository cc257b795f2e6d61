"""Attention implementations: the names a model may be built and loaded with, whether this machine can
run one, and which ones a transformers model class declares it runs.

``BuildSpec.attn_implementation`` (`vlm.build`) picks one for the LLM and the vision tower; the model
checks the parts and the machine when it is built (`vlm.modeling`). transformers' default (None) is sdpa
where a part supports it, else eager.
"""

from __future__ import annotations

import importlib.util

import torch
from transformers.utils import is_torch_flex_attn_available

ATTN_IMPLEMENTATIONS = ("eager", "sdpa", "flash_attention_2", "flex_attention")
_FLAGS = {"sdpa": "_supports_sdpa", "flash_attention_2": "_supports_flash_attn", "flex_attention": "_supports_flex_attn"}


class AttentionUnavailableError(ValueError):
    """The requested attention implementation cannot run on this machine (flash-attn without CUDA, ...)."""


def check_attn_name(name: str) -> None:
    if name not in ATTN_IMPLEMENTATIONS:
        raise ValueError(f"attn_implementation {name!r}: choose one of {', '.join(ATTN_IMPLEMENTATIONS)}")


def attn_unavailable(name: str) -> str | None:
    """Why this machine cannot run attention ``name`` (one of `ATTN_IMPLEMENTATIONS`); None when it can."""
    if name == "flash_attention_2":
        missing = []
        if importlib.util.find_spec("flash_attn") is None:
            missing.append("the flash-attn package is not installed (the `gpu` extra)")
        if not torch.cuda.is_available():
            missing.append("no CUDA device is available")
        return " and ".join(missing) or None
    if name == "flex_attention" and not is_torch_flex_attn_available():
        return "this PyTorch has no flex_attention"
    return None


def require_attn_implementation(name: str) -> None:
    """Raise `AttentionUnavailableError` when this machine cannot run attention ``name``."""
    check_attn_name(name)
    if reason := attn_unavailable(name):
        raise AttentionUnavailableError(
            f"attn_implementation={name!r} cannot run here: {reason}. 'sdpa' (PyTorch's fused attention) "
            "runs on every device."
        )


def attn_support(model_class: type) -> tuple[str, ...]:
    """The attention implementations a transformers model class declares it runs."""
    return ("eager", *(name for name, flag in _FLAGS.items() if getattr(model_class, flag, False)))
