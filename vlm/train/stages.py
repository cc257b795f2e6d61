"""Stages: small objects that say what trains, on which samples, with which loss.

The one loop (`vlm.train.loop`) asks a stage to ``prepare`` the model it starts from, for its
``dataset`` and ``collator``, for the loss of a micro-batch, and to ``finish`` the trained model.
New kinds (preference optimisation, locality alignment) subclass `Stage` and register a key.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vlm.data.collate import Collator
from vlm.data.dataset import EncodedDataset, SkipBadSamples
from vlm.data.registry import open_source
from vlm.data.tokenize import IGNORE_INDEX
from vlm.modeling import VLMForConditionalGeneration
from vlm.processing import VLMProcessor
from vlm.registry import Registry
from vlm.train.config import StageConfig
from vlm.train.trainable import apply_train_modes, has_lora, load_quantized, merge_lora


class Stage(ABC):
    def __init__(self, config: StageConfig):
        self.config = config

    def load(self, source: Path, for_training: bool = True) -> VLMForConditionalGeneration:
        """The starting model; for QLoRA training its LLM is loaded in 4 bit (the final merge uses the
        unquantised weights, so the result is a plain full-precision model)."""
        if for_training and "qlora" in self.config.train.values():
            return load_quantized(source)
        return VLMForConditionalGeneration.from_pretrained(source)

    def prepare(self, model: VLMForConditionalGeneration) -> nn.Module:
        """Set what trains (and add anything the stage needs); returns the module the loop optimises."""
        apply_train_modes(model, self.config.train, self.config.lora)
        return model

    @abstractmethod
    def dataset(self, processor: VLMProcessor, seed: int) -> torch.utils.data.Dataset: ...

    @abstractmethod
    def collator(self, processor: VLMProcessor) -> Any: ...

    @abstractmethod
    def count_items(self, batch: dict[str, Any]) -> int:
        """How many loss terms a micro-batch holds (the loss is normalised by the step's total)."""

    @abstractmethod
    def loss(self, model: nn.Module, batch: dict[str, Any], num_items: torch.Tensor) -> torch.Tensor:
        """Summed loss of the micro-batch divided by ``num_items`` (the whole step's count)."""

    def finish(self, model: nn.Module) -> VLMForConditionalGeneration:
        """The trained model as a plain `VLMForConditionalGeneration` (LoRA merged)."""
        if has_lora(model):
            merge_lora(model)
        model.requires_grad_(False)
        return model


STAGES: Registry[type[Stage]] = Registry("stage")


@STAGES.register("sft")
class SupervisedStage(Stage):
    """Next-token loss on assistant tokens: LLaVA's align (projector only) and instruct stages."""

    def dataset(self, processor: VLMProcessor, seed: int) -> EncodedDataset:
        data = self.config.data
        return EncodedDataset(open_source(data, seed), processor, data.max_length, data.truncation)

    def collator(self, processor: VLMProcessor) -> SkipBadSamples:
        return SkipBadSamples(Collator(processor.tokenizer.pad_token_id))

    def count_items(self, batch: dict[str, Any]) -> int:
        labels = batch.get("labels")
        return 0 if labels is None else int((labels[:, 1:] != IGNORE_INDEX).sum())

    def loss(self, model: nn.Module, batch: dict[str, Any], num_items: torch.Tensor) -> torch.Tensor:
        return model(**batch, num_items_in_batch=num_items, logits_to_keep="supervised").loss
