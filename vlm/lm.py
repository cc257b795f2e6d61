"""What the wrapped causal LM is made of, read off the model: its base model and whether its logits are
a plain ``lm_head(hidden)`` (export to Llava and the fused loss both need that)."""

from __future__ import annotations

from torch import nn

# Config fields of causal LMs whose forward does more than `lm_head(hidden)` to the logits.
LOGIT_POSTPROCESSING = ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier_scale")


def head_blockers(lm: nn.Module) -> list[str]:
    """Every reason ``lm``'s logits are not ``lm_head(base_model(...).last_hidden_state)`` (empty when they are)."""
    reasons = []
    for name in LOGIT_POSTPROCESSING:
        value = getattr(lm.config, name, None)
        if value not in (None, 1.0):
            reasons.append(f"the LLM post-processes logits ({name}={value})")
    if getattr(lm.get_output_embeddings(), "bias", None) is not None:
        reasons.append("the LLM's output head has a bias")
    if not hasattr(lm, lm.base_model_prefix):
        reasons.append(f"the LLM {type(lm).__name__} has no base model under {lm.base_model_prefix!r}")
    return reasons


def base_model(lm: nn.Module) -> nn.Module:
    """The decoder stack under the LM's head (``lm.model`` for most)."""
    return getattr(lm, lm.base_model_prefix)
