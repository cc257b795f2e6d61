"""POVID's dispreferred data (Zhou et al. 2024): (a) ground-truth answers with plausible hallucinations
injected, (b) images distorted with diffusion noise (the model's own answer to them is scored later,
by the ``dpo`` stage with ``noise_weight > 0``).

Hallucination injection is pluggable (`HallucinationRewriter`): `ChatLLMRewriter` asks any chat LLM (a
transformers causal LM with a chat template) to rewrite real answers; the shapes world's `RuleRewriter`
(`vlm.shapes.povid`) rewrites from its ground truth.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch


# --- (b) image noise ------------------------------------------------------------------------------
def sigmoid_betas(steps: int = 1000, start: float = 1e-5, end: float = 5e-3) -> torch.Tensor:
    """POVID's sigmoid beta schedule: ``sigmoid(linspace(-6, 6, steps)) * (end - start) + start``."""
    return torch.sigmoid(torch.linspace(-6, 6, steps, dtype=torch.float64)) * (end - start) + start


def noise_coefficients(step: int = 500, steps: int = 1000) -> tuple[float, float]:
    """``(sqrt(alpha_bar_t), sqrt(1 - alpha_bar_t))`` with ``alpha_bar_t = prod_{s<=t} (1 - beta_s)``;
    step 500 of 1000 gives (0.863, 0.505)."""
    if not 0 <= step < steps:
        raise ValueError(f"noise step {step} outside [0, {steps})")
    alpha_bar = torch.cumprod(1 - sigmoid_betas(steps), 0)[step]
    return float(alpha_bar.sqrt()), float((1 - alpha_bar).sqrt())


def add_diffusion_noise(
    pixels: torch.Tensor, step: int = 500, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``x_t = sqrt(alpha_bar_t) x + sqrt(1 - alpha_bar_t) eps`` for pixels on [0, 1] (not clamped, as in POVID)."""
    a, b = noise_coefficients(step)
    eps = torch.randn(pixels.shape, generator=generator, dtype=pixels.dtype)
    return a * pixels + b * eps


def noisy_pixel_values(
    pixel_values: torch.Tensor, mean: list[float], std: list[float], step: int, generator: torch.Generator
) -> torch.Tensor:
    """Noise applied on [0, 1] pixels of processor output normalised with ``mean``/``std``, renormalised."""
    m = torch.tensor(mean, dtype=pixel_values.dtype).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=pixel_values.dtype).view(1, -1, 1, 1)
    return (add_diffusion_noise(pixel_values * s + m, step, generator) - m) / s


# --- (a) hallucination injection ------------------------------------------------------------------
class HallucinationRewriter(Protocol):
    """Turns a correct ``answer`` to ``question`` into a plausible wrong one (None: cannot)."""

    def __call__(self, question: str, answer: str, truth: dict[str, Any]) -> str | None: ...


class ChatLLMRewriter:
    """Hallucination injection by any chat LLM (for real data, where no ground truth exists to edit)."""

    INSTRUCTION = (
        "Rewrite the answer so that it stays fluent and plausible but contains hallucinations: change "
        "one or two objects, attributes, counts or spatial relations. Reply with the rewritten answer only."
    )

    def __init__(self, model, tokenizer, max_new_tokens: int = 128):
        self.model, self.tokenizer, self.max_new_tokens = model, tokenizer, max_new_tokens

    def __call__(self, question: str, answer: str, truth: dict[str, Any]) -> str | None:
        content = f"{self.INSTRUCTION}\n\nQuestion: {question}\nAnswer: {answer}"
        ids = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": content}], add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        with torch.inference_mode():
            out = self.model.generate(**ids, max_new_tokens=self.max_new_tokens, do_sample=False,
                                      pad_token_id=self.tokenizer.pad_token_id)
        text = self.tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip()
        return text if text and text != answer.strip() else None
