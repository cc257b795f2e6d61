"""POPE (random / popular / adversarial), scored as LLaVA's ``llava/eval/eval_pope.py`` does.

Harnesses differ: LLaVA scores each split on its own and its reported POPE number (85.9 for
LLaVA-1.5-7B) is the mean F1 over the three splits; lmms-eval pools all questions and takes the
yes-ratio from the ground truth. We follow LLaVA: per split, yes-ratio of the predictions, mean.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

_NEGATIONS = frozenset(("No", "not", "no"))  # case-sensitive in the reference: "Not ..." reads as yes
POPE_SPLITS = ("random", "popular", "adversarial")


def pope_answer(text: str) -> str:
    """LLaVA's eval_pope rule: keep the text before the first '.', delete commas, split on single
    spaces; any word exactly "No", "not" or "no" makes the answer "no", anything else is "yes"."""
    if not isinstance(text, str):
        raise ValueError(f"POPE predictions must be strings, got {type(text).__name__}")
    words = text.split(".")[0].replace(",", "").split(" ")
    return "no" if _NEGATIONS.intersection(words) else "yes"


def pope_scores(predictions: Sequence[str], labels: Sequence[str]) -> dict[str, float]:
    """Accuracy, precision, recall, F1 (yes = positive) and the yes-ratio *of the predictions*, plus the
    confusion counts ``tp``, ``fp``, ``tn``, ``fn``. Where the reference divides by zero (no "yes"
    predicted, or no "yes" label) the ratio is 0.0 here."""
    if isinstance(predictions, str) or isinstance(labels, str):
        raise ValueError("predictions and labels must be sequences of strings, not a single string")
    if len(predictions) != len(labels) or not labels:
        raise ValueError(
            f"need as many labels as predictions, at least one (got {len(predictions)} and {len(labels)})"
        )
    bad = sorted({repr(lab) for lab in labels if lab not in ("yes", "no")})
    if bad:
        raise ValueError(f"POPE labels must be 'yes' or 'no', got {', '.join(bad)}")
    pred = [pope_answer(p) == "yes" for p in predictions]
    gold = [lab == "yes" for lab in labels]
    pairs = list(zip(pred, gold, strict=True))
    tp = sum(p and g for p, g in pairs)
    fp = sum(p and not g for p, g in pairs)
    tn = sum(not p and not g for p, g in pairs)
    fn = sum(not p and g for p, g in pairs)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {
        "accuracy": (tp + tn) / len(pairs),
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "yes_ratio": sum(pred) / len(pred),
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
    }


def pope_report(rows: Iterable[tuple[str, str, str]]) -> dict[str, dict[str, float]]:
    """``(split, prediction, label)`` rows -> :func:`pope_scores` per split, plus ``mean``: each rate
    averaged over the splits present (LLaVA's POPE number is ``mean["f1"]``; counts are summed)."""
    by_split: dict[str, tuple[list[str], list[str]]] = defaultdict(lambda: ([], []))
    for split, prediction, label in rows:
        if split == "mean":
            raise ValueError("'mean' is reserved for the average and cannot name a split")
        by_split[split][0].append(prediction)
        by_split[split][1].append(label)
    if not by_split:
        raise ValueError("no POPE rows to score")
    order = [s for s in POPE_SPLITS if s in by_split] + sorted(set(by_split) - set(POPE_SPLITS))
    report = {split: pope_scores(*by_split[split]) for split in order}
    mean: dict[str, float] = {}
    for key in ("accuracy", "precision", "recall", "f1", "yes_ratio"):
        mean[key] = sum(s[key] for s in report.values()) / len(report)
    for key in ("tp", "fp", "tn", "fn"):
        mean[key] = sum(s[key] for s in report.values())
    report["mean"] = mean
    return report
