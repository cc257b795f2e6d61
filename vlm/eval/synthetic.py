"""Held-out accuracy on the synthetic shapes-world VQA, per question type, next to chance."""

from __future__ import annotations

import string
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from transformers import PreTrainedModel, ProcessorMixin

from vlm.data.synthetic import SyntheticWorld
from vlm.eval.generate import Prompt, generate_answers

QUESTION_TYPES = ("colour", "shape", "count", "existence", "spatial", "small")
MAX_NEW_TOKENS = 8  # answers are one word or number


@dataclass
class TypeScore:
    """``n`` questions, the share answered right, and the majority-answer baseline on them."""

    n: int
    accuracy: float
    chance: float


@dataclass
class SyntheticReport:
    """Per-type and overall scores, plus a few ``(question, prediction, answer)`` triples for the log."""

    per_type: dict[str, TypeScore]
    overall: TypeScore
    examples: list[tuple[str, str, str]] = field(default_factory=list)

    def table(self) -> str:
        """A plain-text table: type, n, accuracy %, chance %; the overall row last."""
        rows = [(t, s) for t, s in self.per_type.items()] + [("overall", self.overall)]
        lines = [f"{'type':<10} {'n':>5} {'accuracy %':>10} {'chance %':>9}"]
        lines += [f"{t:<10} {s.n:>5} {100 * s.accuracy:>10.1f} {100 * s.chance:>9.1f}" for t, s in rows]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-ready: ``{"per_type": {type: {n, accuracy, chance}}, "overall": {...}, "examples": [...]}``."""
        return {
            "per_type": {t: asdict(s) for t, s in self.per_type.items()},
            "overall": asdict(self.overall),
            "examples": [{"question": q, "prediction": p, "answer": a} for q, p, a in self.examples],
        }


def normalize_answer(text: str) -> str:
    """Lowercase, first line, first word, surrounding punctuation stripped: ``"Red circle."`` -> ``"red"``.

    No synonym or number-word mapping: ``"three"`` does not match ``"3"``; the training data
    always answers counts in digits, so a model that learned the format answers in digits.
    """
    lines = text.strip().lower().splitlines()
    words = lines[0].split() if lines else []
    return words[0].strip(string.punctuation) if words else ""


def is_correct(prediction: str, answer: str) -> bool:
    """Exact match after ``normalize_answer`` on both sides."""
    return normalize_answer(prediction) == normalize_answer(answer)


def majority_rate(answers: Sequence[str]) -> float:
    """Accuracy of always giving the most frequent answer in ``answers`` (0.0 when empty)."""
    if not answers:
        return 0.0
    return Counter(normalize_answer(a) for a in answers).most_common(1)[0][1] / len(answers)


def score_predictions(
    types: Sequence[str],
    questions: Sequence[str],
    predictions: Sequence[str],
    answers: Sequence[str],
    n_examples: int = 1,
) -> SyntheticReport:
    """Group by question type and score; keeps the first ``n_examples`` triples of each type."""
    by_type: dict[str, list[int]] = {}
    for i, t in enumerate(types):
        by_type.setdefault(t, []).append(i)
    order = [t for t in QUESTION_TYPES if t in by_type] + sorted(set(by_type) - set(QUESTION_TYPES))
    per_type, examples, correct, majority = {}, [], 0, 0.0
    for t in order:
        idx = by_type[t]
        hits = sum(is_correct(predictions[i], answers[i]) for i in idx)
        chance = majority_rate([answers[i] for i in idx])
        per_type[t] = TypeScore(len(idx), hits / len(idx), chance)
        correct, majority = correct + hits, majority + chance * len(idx)
        examples += [(questions[i], predictions[i], answers[i]) for i in idx[:n_examples]]
    n = len(types)
    overall = TypeScore(n, correct / n if n else 0.0, majority / n if n else 0.0)
    return SyntheticReport(per_type, overall, examples)


def evaluate_synthetic_vqa(
    model: PreTrainedModel,
    processor: ProcessorMixin,
    n_images: int = 200,
    split: str = "test",
    image_size: int = 96,
    batch_size: int = 32,
) -> SyntheticReport:
    """Greedy short answers to every VQA question on the first ``n_images`` scenes of ``split``.

    A prediction is right when its normalised first word (``normalize_answer``) equals the ground
    truth. Chance for a type is its majority-answer rate: the accuracy of always answering that
    type's most frequent ground truth among these held-out questions (an upper bound on any
    constant-answer guesser; e.g. about 0.5 for existence). Overall chance is the same baseline
    pooled over types (per-type majority answers, weighted by n).
    """
    world = SyntheticWorld(split, image_size)
    types, questions, answers, prompts = [], [], [], []
    for i in range(n_images):
        for rec, ex in zip(world.records(i, "vqa"), world.examples(i, "vqa"), strict=True):
            types.append(rec["type"])
            answers.append(rec["answer"])
            questions.append(rec["conversations"][0]["value"].replace("<image>", "").strip())
            prompts.append(_prompt(ex.messages, ex.images))
    predictions = generate_answers(
        model, processor, prompts, batch_size=batch_size, max_new_tokens=MAX_NEW_TOKENS
    )
    return score_predictions(types, questions, predictions, answers)


def _prompt(messages: list[dict], images: list) -> Prompt:
    """The conversation up to (without) its final assistant reply."""
    end = len(messages)
    while end and messages[end - 1]["role"] == "assistant":
        end -= 1
    return messages[:end], images
