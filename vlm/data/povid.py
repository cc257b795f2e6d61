"""POVID's dispreferred data (Zhou et al. 2024): (a) ground-truth answers with plausible hallucinations
injected, (b) images distorted with diffusion noise (the model's own answer to them is scored later,
by the ``dpo`` stage with ``noise_weight > 0``).

Hallucination injection is pluggable: `RuleRewriter` rewrites from the synthetic world's ground
truth (object, attribute, count, relation and existence swaps); `ChatLLMRewriter` asks any chat LLM
(a transformers causal LM with a chat template) to do the same for real data.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any, Protocol

import torch

from vlm.data.synthetic import COLOURS, SHAPES, Scene, SyntheticWorld
from vlm.data.synthetic_tasks import (
    OPPOSITE,
    RELATION_WORDS,
    _absent_pair,
    caption_text,
    object_probes,
    relation,
    vqa_questions,
)


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


class RuleRewriter:
    """From the synthetic ground truth (``truth["scene"]``, ``truth["type"]``): swap an object's colour or
    shape for one seen elsewhere in the scene (co-occurrence, as POVID prefers), count +-1, flip a
    relation or a yes/no, or add an absent object to a caption."""

    def __init__(self, seed: int = 0):
        self.seed = seed

    def __call__(self, question: str, answer: str, truth: dict[str, Any]) -> str | None:
        scene: Scene = truth["scene"]
        rng = random.Random(f"{self.seed}:{scene.seed}:{question}")
        kind = truth["type"]
        if kind in ("colour", "shape"):
            return _other(rng, answer, [getattr(o, kind) for o in scene.objects], COLOURS if kind == "colour" else SHAPES)
        if kind == "small":
            values = COLOURS if answer in COLOURS else SHAPES
            return _other(rng, answer, [], values)
        if kind == "count":
            n = int(answer)
            return str(n + 1 if n == 1 or rng.random() < 0.5 else n - 1)
        if kind == "existence":
            return "no" if answer == "yes" else "yes"
        if kind == "spatial":
            return OPPOSITE[answer]
        if kind == "caption":
            return _caption_hallucination(scene, rng)
        return None


def _other(rng: random.Random, answer: str, seen: list[str], values) -> str:
    near = sorted({v for v in seen if v != answer})
    return rng.choice(near) if near and rng.random() < 0.7 else rng.choice([v for v in values if v != answer])


def _caption_hallucination(scene: Scene, rng: random.Random) -> str:
    objs = sorted(scene.objects, key=lambda o: o.centre[0])
    choice = rng.random()
    if len(objs) == 2 and relation(objs[0], objs[1]) and choice < 0.3:
        r = relation(objs[0], objs[1])
        return caption_text(scene).replace(RELATION_WORDS[r], RELATION_WORDS[OPPOSITE[r]], 1)
    if choice < 0.6:  # an object that is not there
        colour, shape = _absent_pair(scene, rng)
        text = caption_text(scene).rstrip(".")
        return f"{text}; there is also a {colour} {shape}."
    i = rng.randrange(len(objs))
    kind = rng.choice(("colour", "shape"))
    new = _other(rng, getattr(objs[i], kind), [getattr(o, kind) for o in objs], COLOURS if kind == "colour" else SHAPES)
    objects = [replace(o, **{kind: new}) if o is objs[i] else o for o in scene.objects]
    return caption_text(Scene(scene.seed, objects))


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


def povid_records(world: SyntheticWorld, index: int, rewriter: HallucinationRewriter) -> list[dict]:
    """Preference records for one scene: its caption, every VQA question and `object_probes`, chosen =
    ground truth, rejected = ``rewriter``'s hallucinated version (pairs it cannot rewrite are left out)."""
    scene = world.scene(index)
    rng = random.Random(f"povid:{scene.seed}")
    items = [("caption", "Describe the image briefly.", caption_text(scene))]
    items += [(q["type"], q["question"], q["answer"]) for q in vqa_questions(scene, rng)]
    items += [(q["type"], q["question"], q["answer"]) for q in object_probes(scene, rng)]
    out = []
    for kind, question, answer in items:
        rejected = rewriter(question, answer, {"scene": scene, "type": kind})
        if rejected is None or rejected == answer:
            continue
        out.append({
            "id": f"povid_{world.split}_{index:07d}_{len(out)}_{kind}", "image": world.image_path(index),
            "prompt": "<image>\n" + question, "chosen": answer, "rejected": rejected, "type": kind,
        })
    return out
