"""Modality- and length-grouped sampling (LLaVA's ``group_by_modality_length``), resumable mid-epoch.

Image samples and text-only samples are never mixed in a megabatch (``world_size * batch_size``
indices, one optimizer step across all ranks) except in the single leftover megabatch at the end
of the epoch; within each modality, samples of similar length share a megabatch, which cuts padding.
Unlike LLaVA, every shuffle draws from one generator seeded with ``(seed, epoch)``, so an epoch's
order is a pure function of its inputs and can be resumed from a position.

With ``drop_incomplete`` (what training uses) an epoch ends at its last whole megabatch: every
optimizer step then sees one full global batch, and how that batch is split across processes and
accumulation steps (``batch_size * world_size`` held fixed) changes nothing in the order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import Sampler


class ModalityLengthGroupedSampler(Sampler[int]):
    """Yields every index once per epoch, in megabatches of one modality grouped by length.

    Within a modality, indices are shuffled, cut into windows of ``group_windows`` megabatches,
    each window sorted by length (longest first) and cut into megabatches; then the megabatches of
    both modalities are shuffled together. The two incomplete tail megabatches are joined and
    yielded last; with ``drop_incomplete`` only as many of them as fill whole megabatches.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        has_image: Sequence[bool],
        batch_size: int,
        world_size: int = 1,
        seed: int = 0,
        epoch: int = 0,
        group_windows: int = 8,
        drop_incomplete: bool = False,
    ):
        if len(lengths) != len(has_image):
            raise ValueError(f"{len(lengths)} lengths but {len(has_image)} has_image flags")
        if batch_size < 1 or world_size < 1 or group_windows < 1:
            raise ValueError("batch_size, world_size and group_windows must be at least 1")
        self.lengths = [int(n) for n in lengths]
        self.has_image = [bool(b) for b in has_image]
        self.megabatch_size = batch_size * world_size
        self.group_windows = group_windows
        self.drop_incomplete = drop_incomplete
        self.seed = seed
        self.epoch = epoch
        self.position = 0  # indices of this epoch already yielded

    def set_epoch(self, epoch: int) -> None:
        """Start ``epoch`` from its beginning."""
        self.epoch, self.position = epoch, 0

    def __len__(self) -> int:
        return self.epoch_length() - self.position

    def epoch_length(self) -> int:
        """Indices yielded per epoch."""
        n = len(self.lengths)
        return n - n % self.megabatch_size if self.drop_incomplete else n

    def __iter__(self) -> Iterator[int]:
        order = self.epoch_order()
        while self.position < len(order):
            index = order[self.position]
            self.position += 1
            yield index
        self.position = 0  # a finished pass: iterating again repeats the epoch, as DistributedSampler does

    def epoch_order(self) -> list[int]:
        """The full order of the current epoch (independent of the resume position)."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        image = [i for i, b in enumerate(self.has_image) if b]
        text = [i for i, b in enumerate(self.has_image) if not b]
        image_megabatches = self._megabatches(image, generator)
        text_megabatches = self._megabatches(text, generator)
        tail = _pop_partial(image_megabatches, self.megabatch_size) + _pop_partial(
            text_megabatches, self.megabatch_size
        )
        full = image_megabatches + text_megabatches
        shuffled = [full[i] for i in torch.randperm(len(full), generator=generator).tolist()]
        if tail:
            shuffled.append(sorted(tail, key=lambda i: -self.lengths[i]))
        return [i for megabatch in shuffled for i in megabatch][: self.epoch_length()]

    def _megabatches(self, indices: list[int], generator: torch.Generator) -> list[list[int]]:
        permuted = [indices[i] for i in torch.randperm(len(indices), generator=generator).tolist()]
        window = self.megabatch_size * self.group_windows
        grouped: list[int] = []
        for start in range(0, len(permuted), window):
            grouped += sorted(permuted[start : start + window], key=lambda i: -self.lengths[i])
        return [grouped[i : i + self.megabatch_size] for i in range(0, len(grouped), self.megabatch_size)]

    def state_dict(self) -> dict[str, Any]:
        """Seed, epoch and position; a trainer that prefetches should overwrite ``position`` with
        the number of samples it actually consumed."""
        return {
            "seed": self.seed,
            "epoch": self.epoch,
            "position": self.position,
            "num_samples": len(self.lengths),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("num_samples", len(self.lengths)) != len(self.lengths):
            raise ValueError(
                f"state is for {state['num_samples']} samples, this sampler has {len(self.lengths)}"
            )
        self.seed, self.epoch, self.position = state["seed"], state["epoch"], state["position"]


def _pop_partial(megabatches: list[list[int]], size: int) -> list[int]:
    """Remove and return the last megabatch if it is incomplete."""
    if megabatches and len(megabatches[-1]) < size:
        return megabatches.pop()
    return []
