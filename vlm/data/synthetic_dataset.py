"""The synthetic world as a map-style training source (scenes rendered on access, nothing on disk)."""

from __future__ import annotations

from collections.abc import Sequence

from vlm.data.example import Example
from vlm.data.sources import conversation_to_messages, text_length
from vlm.data.synthetic import SyntheticWorld


class SyntheticDataset:
    """Every record of ``tasks`` for scenes ``first..first+n_images-1`` of one split, in (scene, task) order."""

    def __init__(self, n_images: int, tasks: Sequence[str], split: str = "train", image_size: int = 96,
                 first: int = 0):
        if "pref" in tasks:
            raise ValueError("the 'pref' task holds preference pairs, not conversations; use a preference stage")
        self.world = SyntheticWorld(split, image_size)
        self.source = f"synthetic/{split}"
        self._index: list[tuple[int, int, int]] = []  # (scene, task number, record number)
        self._lengths: list[int] = []
        self.tasks = list(tasks)
        for scene in range(first, first + n_images):
            for t, task in enumerate(self.tasks):
                for r, record in enumerate(self.world.records(scene, task)):
                    self._index.append((scene, t, r))
                    self._lengths.append(text_length(record["conversations"]))

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, index: int) -> Example:
        scene, t, r = self._index[index]
        record = self.world.records(scene, self.tasks[t])[r]
        messages = conversation_to_messages(record["conversations"], record["id"])
        return Example(record["id"], messages, [self.world.image(scene)], source=self.source)

    def lengths(self) -> list[int]:
        return list(self._lengths)

    def modalities(self) -> list[bool]:
        return [True] * len(self._index)

    def modality_lengths(self) -> tuple[list[int], list[bool]]:
        return self.lengths(), self.modalities()
