"""The stage seam: a small object that says what trains, on which samples, with which loss.

The one loop (`vlm.train.loop`) asks a stage to ``load`` and ``prepare`` the model it starts from, for
its ``dataset`` and ``collator``, for the loss of a micro-batch and its own metrics, and to
``finish`` the trained model. A kind declares its options (``Options``, a dataclass: the stage config's
``options``) and its parts (``parts``: the names ``train`` may use, each a module of the model it trains).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from vlm.data.registry import open_source
from vlm.processing import VLMProcessor
from vlm.registry import Registry
from vlm.train.config import StageConfig
from vlm.train.overrides import from_dict

VLM_PARTS = {"vision": "vision_tower", "projector": "projector", "llm": "language_model"}


@dataclass
class NoOptions:
    """A kind without options of its own."""


class Stage(ABC):
    Options: ClassVar[type] = NoOptions
    parts: ClassVar[dict[str, str]] = VLM_PARTS  # part name -> attribute of the module the loop trains

    def __init__(self, config: StageConfig):
        self.config = config
        self.options = stage_options(type(self), config.options)

    def modes(self) -> dict[str, str]:
        """What trains, per part (``frozen`` where ``train`` does not name a part)."""
        return {part: self.config.train.get(part, "frozen") for part in self.parts}

    @abstractmethod
    def load(self, source: Path, for_training: bool = True) -> nn.Module:
        """The model the stage starts from, read from ``source`` (a folder)."""

    def load_processor(self, source: Path) -> Any:
        """What turns the stage's samples into model inputs (saved next to the result)."""
        return VLMProcessor.from_pretrained(source)

    @abstractmethod
    def prepare(self, model: nn.Module) -> nn.Module:
        """Set what trains (and add anything the stage needs); returns the module the loop optimises."""

    def source(self, seed: int) -> Any:
        """The stage's data source (`vlm.data.registry`); opening it fails at once on missing files."""
        return open_source(self.config.data, seed)

    @abstractmethod
    def dataset(self, processor: Any, seed: int) -> torch.utils.data.Dataset: ...

    @abstractmethod
    def collator(self, processor: Any) -> Any: ...

    @abstractmethod
    def count_items(self, batch: dict[str, Any]) -> int:
        """How many loss terms a micro-batch holds (the loss is normalised by the step's total)."""

    @abstractmethod
    def loss(self, model: nn.Module, batch: dict[str, Any], num_items: torch.Tensor) -> torch.Tensor:
        """Summed loss of the micro-batch divided by ``num_items`` (the whole step's count)."""

    def take_metrics(self) -> dict[str, tuple[float, float]]:
        """The stage's own metrics since the last call, ``{name: (sum, count)}`` (the same names on every
        process; the loop logs sum / count over processes)."""
        return {}

    @abstractmethod
    def finish(self, model: nn.Module) -> Any:
        """The trained result, something with ``save_pretrained`` (a model folder or an encoder folder)."""


STAGES: Registry[type[Stage]] = Registry("stage", package="vlm.train.stages")


def stage_options(kind: type[Stage], options: Any) -> Any:
    """``options`` as ``kind``'s options dataclass: None gives its defaults, a dict (a saved config) its fields."""
    if options is None:
        return kind.Options()
    if isinstance(options, dict):
        return from_dict(kind.Options, options)
    if not isinstance(options, kind.Options):
        raise TypeError(f"{kind.__name__} takes {kind.Options.__name__} options, not {type(options).__name__}")
    return options
