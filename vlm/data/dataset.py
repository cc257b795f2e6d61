"""Examples -> encoded training samples, with bad samples carried to the main process to be counted.

A bad sample is *returned* (as its `BadSample`) rather than raised, and the collator passes it on
in ``batch["bad_samples"]``: DataLoader workers are separate processes, so only the training loop
in the main process can keep one true count (and fail at the first one in strict mode).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from vlm.data.errors import BadSample, BadSampleLog
from vlm.data.example import Example
from vlm.data.tokenize import encode_example
from vlm.processing import VLMProcessor


class EncodedDataset(torch.utils.data.Dataset):
    """Map-style: ``source[i]`` is an `Example` or raises `BadSample`; items are encoded samples or the `BadSample`."""

    def __init__(
        self, source: Sequence[Example], processor: VLMProcessor, max_length: int, truncation: str = "text"
    ):
        self.source, self.processor = source, processor
        self.max_length, self.truncation = max_length, truncation

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> dict[str, Any] | BadSample:
        try:
            return encode_example(self.source[index], self.processor, self.max_length, self.truncation)
        except BadSample as bad:
            return bad


class SkipBadSamples:
    """Wraps a collator: batches the good samples, hands the bad ones on under ``bad_samples``."""

    def __init__(self, collate: Callable[[list[dict[str, Any]]], dict[str, Any]]):
        self.collate = collate

    def __call__(self, items: list[dict[str, Any] | BadSample]) -> dict[str, Any]:
        good = [item for item in items if not isinstance(item, BadSample)]
        batch = self.collate(good) if good else {}
        batch["bad_samples"] = [item for item in items if isinstance(item, BadSample)]
        return batch


def take_bad_samples(batch: dict[str, Any], log: BadSampleLog) -> dict[str, Any]:
    """Record a batch's bad samples (raising in strict mode); returns the batch ready for the model."""
    for bad in batch.pop("bad_samples", []):
        log.record(bad)
    return batch
