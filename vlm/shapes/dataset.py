"""The shapes world as training data: the ``synthetic`` conversation and preference sources.

Scenes are rendered on access; nothing is written to disk. ``DataConfig.tasks`` names the emitters
(`vlm.shapes.tasks`); scenes ``first_image .. first_image + n_images - 1`` of the train split are used.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vlm.data.example import Example
from vlm.data.preference import preference_length
from vlm.data.registry import DATA_SOURCES, PREFERENCE_SOURCES
from vlm.data.sources import conversation_to_messages, text_length
from vlm.shapes.povid import RuleRewriter, povid_records
from vlm.shapes.world import SyntheticWorld


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


class SyntheticPreferences:
    """``pref`` (captions with a swapped attribute/relation, counts off by one), ``povid`` records or
    ``povid_objects`` (the ``povid`` records of type ``existence``)."""

    TASKS = ("pref", "povid", "povid_objects")

    def __init__(self, n_images: int, task: str = "pref", split: str = "train", image_size: int = 96, seed: int = 0,
                 first: int = 0):
        if task not in self.TASKS:
            raise ValueError(f"synthetic preference task must be one of {self.TASKS}, not {task!r}")
        self.world = SyntheticWorld(split, image_size)
        rewriter = RuleRewriter(seed)
        scenes = range(first, first + n_images)
        if task == "pref":
            self.records = [(i, r) for i in scenes for r in self.world.records(i, "pref")]
        else:
            self.records = [(i, r) for i in scenes for r in povid_records(self.world, i, rewriter)
                            if task == "povid" or r["type"] == "existence"]

    def __len__(self) -> int:
        return len(self.records)

    def get(self, index: int) -> tuple[dict[str, Any], list]:
        scene, record = self.records[index]
        return record, [self.world.image(scene)]

    def modality_lengths(self) -> tuple[list[int], list[bool]]:
        return [preference_length(r) for _, r in self.records], [True] * len(self.records)




@DATA_SOURCES.register("synthetic")
def _open_synthetic(cfg: Any, seed: int) -> SyntheticDataset:
    return SyntheticDataset(cfg.n_images, cfg.tasks, "train", cfg.image_size, cfg.first_image)


@PREFERENCE_SOURCES.register("synthetic")
def _open_synthetic_preferences(cfg: Any, seed: int) -> SyntheticPreferences:
    if len(cfg.tasks) != 1:
        raise ValueError(f"a preference stage reads one synthetic task {SyntheticPreferences.TASKS}, not {cfg.tasks}")
    return SyntheticPreferences(cfg.n_images, cfg.tasks[0], "train", cfg.image_size, seed, cfg.first_image)
