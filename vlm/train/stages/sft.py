"""The ``sft`` stage: next-token loss on assistant tokens (LLaVA's align and instruct stages, ConvLLaVA's
three), with each part frozen, fully trained, LoRA or QLoRA (`vlm.train.trainable`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vlm.data.collate import Collator
from vlm.data.dataset import EncodedDataset, SkipBadSamples
from vlm.data.tokenize import IGNORE_INDEX
from vlm.modeling import VLMForConditionalGeneration
from vlm.processing import VLMProcessor
from vlm.train.config import LoraConfig
from vlm.train.stages.base import STAGES, Stage
from vlm.train.trainable import apply_train_modes, has_lora, load_quantized, merge_lora


@dataclass
class SFTOptions:
    lora: LoraConfig = field(default_factory=LoraConfig)  # adapters of the parts trained with lora / qlora


class VLMStage(Stage):
    """A stage that trains a `VLMForConditionalGeneration` (its parts: vision, projector, llm)."""

    Options = SFTOptions

    def load(self, source: Path, for_training: bool = True) -> VLMForConditionalGeneration:
        """The starting model; for QLoRA training its LLM is loaded in 4 bit (the final merge uses the
        unquantised weights, so the result is a plain full-precision model)."""
        if for_training and "qlora" in self.config.train.values():
            return load_quantized(source)
        return VLMForConditionalGeneration.from_pretrained(source)

    def prepare(self, model: VLMForConditionalGeneration) -> nn.Module:
        apply_train_modes(model, self.config.train, self.options.lora)
        return model

    def finish(self, model: nn.Module) -> VLMForConditionalGeneration:
        """The trained model as a plain `VLMForConditionalGeneration` (LoRA merged)."""
        if has_lora(model):
            merge_lora(model)
        model.requires_grad_(False)
        return model


@STAGES.register("sft")
class SupervisedStage(VLMStage):
    """Next-token loss on assistant tokens: LLaVA's align (projector only) and instruct stages."""

    def dataset(self, processor: VLMProcessor, seed: int) -> EncodedDataset:
        data = self.config.data
        return EncodedDataset(self.source(seed), processor, data.max_length, data.truncation)

    def collator(self, processor: VLMProcessor) -> SkipBadSamples:
        return SkipBadSamples(Collator(processor.tokenizer.pad_token_id))

    def count_items(self, batch: dict[str, Any]) -> int:
        labels = batch.get("labels")
        return 0 if labels is None else int((labels[:, 1:] != IGNORE_INDEX).sum())

    def loss(self, model: nn.Module, batch: dict[str, Any], num_items: torch.Tensor) -> torch.Tensor:
        return model(**batch, num_items_in_batch=num_items, logits_to_keep="supervised").loss
