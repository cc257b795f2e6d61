"""The benchmarks' inputs: examples of the embedded default's data (the ``synthetic`` data source)."""

from __future__ import annotations

from vlm.data.example import Example
from vlm.data.registry import open_source
from vlm.train.config import DataConfig


def synthetic_examples(n: int, image_size: int, tasks: tuple[str, ...] = ("vqa",)) -> list[Example]:
    """The first ``n`` examples of ``tasks`` over scenes 0.. (each scene's records of each task in turn)."""
    source = open_source(DataConfig(tasks=list(tasks), n_images=n, image_size=image_size))
    return [source[i] for i in range(min(n, len(source)))]
