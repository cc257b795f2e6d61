"""The benchmark seam: a `Task` reads a benchmark's released files into `Sample`s, says how to prompt
for each, and scores predictions; `TASKS` holds one entry per benchmark (files in `vlm/eval/tasks/`).

A task never runs a model: `vlm.eval.run` generates the replies, `Task.score` turns replies into the
benchmark's numbers, so ``vlm eval score`` can score anyone's predictions with the same code.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from PIL import Image

from vlm.data.images import image_from_bytes, load_image
from vlm.eval.prompts import PROMPT_STYLES
from vlm.registry import Registry


@dataclass(frozen=True)
class ImageRef:
    """An image to load when needed: a path inside ``root`` or encoded bytes (a parquet cell)."""

    path: str | None = None
    root: Path | None = None
    data: bytes | None = field(default=None, repr=False)

    def load(self, sample_id: str) -> Image.Image:
        """RGB image, or `BadSample` (missing, corrupt, oversized, escaping its root)."""
        if self.data is not None:
            return image_from_bytes(self.data, sample_id)
        return load_image(self.path, self.root, sample_id)


@dataclass
class Sample:
    """One question. ``answer`` is whatever the metric needs (a string, 10 human answers, a box);
    ``options`` are the choices of a multiple-choice question; ``meta`` holds split/category/type."""

    id: str
    question: str
    images: list[ImageRef]
    answer: Any
    options: list[str] | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Scores:
    """``metrics``: the benchmark's headline numbers (fractions, or MME points); ``chance``: the same
    metrics for the best constant reply where that is defined; ``breakdown``: per split/type rows."""

    metrics: dict[str, float]
    chance: dict[str, float] = field(default_factory=dict)
    breakdown: dict[str, dict[str, float]] = field(default_factory=dict)


class Task(ABC):
    """One benchmark. Subclasses set ``kind`` (how the prompt style phrases the question),
    ``headline`` (the metric reported in tables) and implement ``read`` and ``score``."""

    kind: ClassVar[str] = "short"
    headline: ClassVar[str] = "accuracy"
    max_new_tokens: ClassVar[int] = 16
    percent: ClassVar[bool] = True  # metrics are fractions, printed as %; False: points (MME)
    description: ClassVar[str] = ""

    @abstractmethod
    def read(self, data: Path) -> list[Sample]:
        """The benchmark's samples from its released files (or the lmms-eval parquet layout)."""

    @abstractmethod
    def score(self, samples: Sequence[Sample], predictions: Sequence[str]) -> Scores:
        """The benchmark's metrics for one reply per sample, in order."""

    def prompt(self, sample: Sample, style: str) -> str:
        """The user turn's text (without image markers) in prompt style ``style``."""
        return PROMPT_STYLES.get(style).format(self.kind, sample.question, sample.options)

    def default_data(self) -> Path | None:
        """Where the data lives when ``--data`` is not given (generated tasks); None: must be given."""
        return None


class ModelProbe(Task):
    """A task that measures the model itself on its samples (its logits, its image tokens) instead of
    scoring its replies; the runner calls `measure` and caches nothing."""

    @abstractmethod
    def measure(self, model: Any, processor: Any, samples: Sequence[Sample], batch_size: int) -> Scores:
        """The probe's scores on ``samples`` (their images loaded with ``ImageRef.load``)."""

    def score(self, samples: Sequence[Sample], predictions: Sequence[str]) -> Scores:
        raise ValueError(f"{type(self).__name__} measures the model itself; it has no replies to score")


TASKS: Registry[type[Task]] = Registry("eval task", package="vlm.eval.tasks")


def get_task(name: str) -> Task:
    """A task instance by exact registry key."""
    return TASKS.get(name)()


def check_lengths(samples: Sequence[Sample], predictions: Sequence[str]) -> None:
    if isinstance(predictions, str) or len(predictions) != len(samples):
        n = "a string" if isinstance(predictions, str) else len(predictions)
        raise ValueError(f"need one prediction per sample: {len(samples)} samples, {n} predictions")


def best_constant(candidates: Sequence[str], score: Any, headline: str) -> dict[str, float]:
    """The metrics of the constant reply (one of ``candidates``) that maximises ``headline``:
    ``score(reply) -> metrics``. This is what tables print as chance."""
    best: dict[str, float] = {}
    for reply in dict.fromkeys(candidates):
        metrics = score(reply)
        if not best or metrics[headline] > best[headline]:
            best = metrics
    return best
