"""The ``dpo`` stage: Direct Preference Optimisation, with POVID's noisy-own term.

    loss = -log sigmoid(beta * ((logp_pi(y_w) - logp_ref(y_w)) - (logp_pi(y_l) - logp_ref(y_l))))

averaged over pairs; log-probs are sums over the completion tokens only (prompt, image and padding
positions carry label -100). The reference is a frozen copy of the starting model (``copy``), or
the policy with its LoRA adapters switched off (``adapter``, peft's ``disable_adapter``).

POVID (``noise_weight > 0``): the policy sees a diffusion-noised copy of the image while the
preferred answer is teacher-forced; its greedy token at each answer position forms the dispreferred
answer y_n, which is then scored under the clean image with the same (preferred) prefix:
``text_weight * DPO(y_w, y_l) + noise_weight * DPO(y_w, y_n)`` (POVID's stage 2: 0.5 and 0.5).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn

from vlm.data.dataset import SkipBadSamples
from vlm.data.preference import PreferenceCollator, PreferenceDataset
from vlm.data.registry import open_preferences
from vlm.data.tokenize import IGNORE_INDEX
from vlm.modeling import VLMForConditionalGeneration
from vlm.processing import VLMProcessor
from vlm.train.engine import no_zero_init
from vlm.train.stages.base import STAGES
from vlm.train.stages.sft import SFTOptions, VLMStage
from vlm.train.trainable import apply_train_modes

MODEL_INPUTS = ("input_ids", "attention_mask", "pixel_values", "image_sizes")


def token_logps(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(rows, L-1) log-probability of each next label token, 0 where the label is -100."""
    labels = labels[:, 1:]
    mask = labels != IGNORE_INDEX
    logp = torch.log_softmax(logits[:, :-1].float(), -1).gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return logp * mask


def dpo_loss(
    policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor, ref_rejected: torch.Tensor,
    beta: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-pair losses and the implicit rewards ``beta * (logp_pi - logp_ref)`` of chosen and rejected."""
    chosen_reward = beta * (policy_chosen - ref_chosen)
    rejected_reward = beta * (policy_rejected - ref_rejected)
    return -F.logsigmoid(chosen_reward - rejected_reward), chosen_reward.detach(), rejected_reward.detach()


@contextmanager
def adapters_disabled(model: nn.Module):
    """The policy without its LoRA adapters (as peft's ``disable_adapter()``, for injected adapters)."""
    layers = [m for m in model.modules() if isinstance(m, BaseTunerLayer)]
    for layer in layers:
        layer.enable_adapters(False)
    try:
        yield
    finally:
        for layer in layers:
            layer.enable_adapters(True)


@dataclass
class DPOOptions(SFTOptions):
    beta: float = 0.1
    reference: str = "copy"  # copy: frozen copy of the start model | adapter: the policy with LoRA disabled
    sft_weight: float = 0.0  # + weight x mean token NLL of the chosen answers
    text_weight: float = 1.0  # weight of DPO(chosen vs rejected text)
    noise_weight: float = 0.0  # POVID: weight of DPO(chosen vs own greedy tokens under a noisy image)
    noise_step: int = 500  # diffusion step of the image noise (sigmoid betas 1e-5..5e-3, 1000 steps)


@STAGES.register("dpo")
class DPOStage(VLMStage):
    """DPO on preference pairs (``data.tasks=[pref]`` / ``[povid]`` or a JSON file); see the module doc."""

    Options = DPOOptions

    def __init__(self, config):
        super().__init__(config)
        opts = self.options
        if opts.reference not in ("copy", "adapter"):
            raise ValueError(f"options.reference must be 'copy' or 'adapter', not {opts.reference!r}")
        if opts.reference == "adapter" and any(m not in ("frozen", "lora") for m in config.train.values()):
            raise ValueError("options.reference=adapter needs every part frozen or lora (the reference is the "
                             f"policy without adapters), got train={config.train}; use reference=copy")
        self.reference: nn.Module | None = None
        self._training_from: Path | None = None
        self._stats: dict[str, list[float]] = {}

    def load(self, source: Path, for_training: bool = True) -> VLMForConditionalGeneration:
        self._training_from = Path(source) if for_training else None
        return super().load(source, for_training)

    def prepare(self, model: VLMForConditionalGeneration) -> nn.Module:
        if self._training_from is not None and self.options.reference == "copy":
            with no_zero_init():
                self.reference = VLMForConditionalGeneration.from_pretrained(self._training_from)
            self.reference.requires_grad_(False).eval()
        self._training_from = None
        apply_train_modes(model, self.config.train, self.options.lora)
        return model

    def source(self, seed: int) -> Any:
        return open_preferences(self.config.data, seed)

    def dataset(self, processor: VLMProcessor, seed: int) -> PreferenceDataset:
        cfg = self.config
        noise = self.options.noise_step if self.options.noise_weight > 0 else None
        return PreferenceDataset(self.source(seed), processor, cfg.data.max_length, noise, seed)

    def collator(self, processor: VLMProcessor) -> SkipBadSamples:
        return SkipBadSamples(PreferenceCollator(processor.tokenizer.pad_token_id))

    def count_items(self, batch: dict[str, Any]) -> int:
        return int(batch.get("pairs", 0))

    def _reference_logits(self, model: nn.Module, inputs: dict[str, Any]) -> torch.Tensor:
        with torch.no_grad():
            if self.reference is None:
                with adapters_disabled(model):
                    return model(**inputs).logits
            self.reference.to(inputs["input_ids"].device)
            return self.reference(**inputs).logits

    def loss(self, model: nn.Module, batch: dict[str, Any], num_items: torch.Tensor) -> torch.Tensor:
        cfg, n = self.options, batch["pairs"]
        inputs = {k: batch[k] for k in MODEL_INPUTS if k in batch}
        labels = batch["labels"]
        logits = model(**inputs).logits
        policy_tokens = token_logps(logits, labels)
        ref_logits = self._reference_logits(model, inputs)
        ref_tokens = token_logps(ref_logits, labels)
        policy, ref = policy_tokens.sum(-1), ref_tokens.sum(-1)
        total = torch.zeros((), device=logits.device)
        if cfg.text_weight:
            losses, chosen, rejected = dpo_loss(policy[:n], policy[n:], ref[:n], ref[n:], cfg.beta)
            total = total + cfg.text_weight * losses.sum()
            self._record("rewards", chosen, rejected)
        if cfg.noise_weight:
            own = self.noisy_own_labels(model, batch)  # y_n on the chosen rows' answer positions
            noisy_policy = token_logps(logits[:n], own).sum(-1)
            noisy_ref = token_logps(ref_logits[:n], own).sum(-1)
            losses, chosen, rejected = dpo_loss(policy[:n], noisy_policy, ref[:n], noisy_ref, cfg.beta)
            total = total + cfg.noise_weight * losses.sum()
            self._record("noise_rewards", chosen, rejected)
        if cfg.sft_weight:
            mask = labels[:n, 1:] != IGNORE_INDEX
            nll = -policy_tokens[:n].sum(-1) / mask.sum(-1).clamp(min=1)
            total = total + cfg.sft_weight * nll.sum()
        return total / num_items

    def noisy_own_labels(self, model: nn.Module, batch: dict[str, Any]) -> torch.Tensor:
        """The chosen rows' labels with every answer token replaced by the policy's greedy token when it
        sees the noisy image and the preferred prefix."""
        n = batch["pairs"]
        labels = batch["labels"][:n]
        sizes = batch.get("image_sizes")  # chosen rows' images first (high_res)
        with torch.no_grad():
            noisy = model(input_ids=batch["input_ids"][:n], attention_mask=batch["attention_mask"][:n],
                          pixel_values=batch["noisy_pixel_values"],
                          image_sizes=None if sizes is None else sizes[: len(sizes) // 2]).logits
        own = labels.clone()
        answer = labels[:, 1:] != IGNORE_INDEX
        own[:, 1:][answer] = noisy[:, :-1].argmax(-1)[answer]
        return own

    def _record(self, name: str, chosen: torch.Tensor, rejected: torch.Tensor) -> None:
        k = float(len(chosen))
        for key, value in ((f"{name}/chosen", chosen.sum()), (f"{name}/rejected", rejected.sum()),
                           (f"{name}/margin", (chosen - rejected).sum()), (f"{name}/accuracy", (chosen > rejected).sum())):
            s, c = self._stats.get(key, (0.0, 0.0))
            self._stats[key] = (s + float(value), c + k)

    def take_metrics(self) -> dict[str, tuple[float, float]]:
        """Sums and counts since the last call (the loop reduces them over processes): reward of the
        chosen and rejected answers, their margin, and preference accuracy (chosen reward higher)."""
        names = [p for p, w in (("rewards", self.options.text_weight), ("noise_rewards", self.options.noise_weight)) if w]
        keys = [f"{p}/{k}" for p in names for k in ("chosen", "rejected", "margin", "accuracy")]
        out = {k: self._stats.get(k, (0.0, 0.0)) for k in keys}
        self._stats = {}
        return out
