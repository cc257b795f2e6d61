"""The shared scoring of benchmarks with one right answer per question: multiple choice (ScienceQA-IMG,
SEED-Bench, AI2D: ``answer`` a letter, ``options`` the texts A, B, ...) and closed answer sets (VSR,
TallyQA). Each reply is parsed (``pick``) to an answer or None (wrong); accuracy overall and per
``group_by`` meta field; chance = the best constant reply among ``constants`` (letters, or the options).
In likelihood mode the runner returns a bare letter (kind "choice") or an option text (other kinds).
"""

from __future__ import annotations

import string
from abc import abstractmethod
from collections import defaultdict
from collections.abc import Sequence

from vlm.eval.metrics.choice import choice_accuracy
from vlm.eval.task import Sample, Scores, Task, best_constant, check_lengths


def letter_of(index: int, n_options: int, where: str) -> str:
    """The answer letter of a 0-based answer index, checked against the number of options."""
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < n_options:
        raise ValueError(f"{where}: answer index {index!r} is not one of {n_options} options")
    return string.ascii_uppercase[index]


class PickTask(Task):
    headline = "accuracy"
    max_new_tokens = 8
    group_by = ""  # meta field of the breakdown; "" for none

    @abstractmethod
    def pick(self, sample: Sample, reply: str) -> str | None:
        """The answer ``reply`` gives, comparable with ``sample.answer``, or None (wrong)."""

    def constants(self, samples: Sequence[Sample]) -> list[str]:
        """Constant replies tried for chance: every option of the samples."""
        return list(dict.fromkeys(o for s in samples for o in s.options or ()))

    def score(self, samples: Sequence[Sample], predictions: Sequence[str]) -> Scores:
        check_lengths(samples, predictions)

        def accuracy(replies: Sequence[str], idx: Sequence[int]) -> dict[str, float]:
            picked = [self.pick(samples[i], replies[i]) for i in idx]
            return {"accuracy": choice_accuracy(picked, [samples[i].answer for i in idx])}

        def chance(idx: Sequence[int]) -> float:
            candidates = self.constants([samples[i] for i in idx])
            return best_constant(candidates, lambda r: accuracy([r] * len(samples), idx), "accuracy")[
                "accuracy"
            ]

        everything = range(len(samples))
        breakdown = {}
        if self.group_by:
            groups: dict[str, list[int]] = defaultdict(list)
            for i, s in enumerate(samples):
                groups[str(s.meta.get(self.group_by))].append(i)
            breakdown = {
                name: {"n": len(idx), **accuracy(predictions, idx), "chance": chance(idx)}
                for name, idx in sorted(groups.items())
            }
        return Scores(accuracy(predictions, everything), {"accuracy": chance(everything)}, breakdown)


class ChoiceTask(PickTask):
    """Multiple choice: ``pick`` reads an option letter; chance tries every letter."""

    kind = "choice"

    def constants(self, samples: Sequence[Sample]) -> list[str]:
        return list(string.ascii_uppercase[: max(len(s.options) for s in samples)])
