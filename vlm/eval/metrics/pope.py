"""POPE (random / popular / adversarial) and MME, scored as LLaVA's and MME's reference scripts do."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

_NEGATIONS = frozenset(("No", "not", "no"))  # case-sensitive in the reference: "Not ..." reads as yes


def pope_answer(text: str) -> str:
    """LLaVA's eval_pope rule: in the first sentence, commas deleted and split on single spaces, any
    word "No", "not" or "no" makes the answer "no"; anything else is "yes"."""
    words = text.split(".")[0].replace(",", "").split(" ")
    return "no" if _NEGATIONS.intersection(words) else "yes"


def pope_scores(predictions: Sequence[str], labels: Sequence[str]) -> dict[str, float]:
    """Accuracy, precision, recall, F1 (yes = positive) and the yes-ratio *of the predictions*."""
    if len(predictions) != len(labels) or not labels:
        raise ValueError(f"need as many labels as predictions (got {len(predictions)} and {len(labels)})")
    bad = sorted({lab for lab in labels if lab not in ("yes", "no")})
    if bad:
        raise ValueError(f"POPE labels must be 'yes' or 'no', got {bad}")
    pred = [pope_answer(p) == "yes" for p in predictions]
    gold = [lab == "yes" for lab in labels]
    tp = sum(p and g for p, g in zip(pred, gold, strict=True))
    fp = sum(p and not g for p, g in zip(pred, gold, strict=True))
    fn = sum(not p and g for p, g in zip(pred, gold, strict=True))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {
        "accuracy": sum(p == g for p, g in zip(pred, gold, strict=True)) / len(gold),
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "yes_ratio": sum(pred) / len(pred),
    }


def pope_report(rows: Iterable[tuple[str, str, str]]) -> dict[str, dict[str, float]]:
    """``(split, prediction, label)`` rows -> scores per split plus ``mean`` (each metric averaged over
    the splits, as LLaVA reports POPE: its 85.9 is the mean F1)."""
    by_split: dict[str, tuple[list[str], list[str]]] = defaultdict(lambda: ([], []))
    for split, prediction, label in rows:
        by_split[split][0].append(prediction)
        by_split[split][1].append(label)
    report = {split: pope_scores(*by_split[split]) for split in sorted(by_split)}
    if report:
        report["mean"] = {k: sum(s[k] for s in report.values()) / len(report) for k in next(iter(report.values()))}
    return report


MME_PERCEPTION = ("existence", "count", "position", "color", "posters", "celebrity", "scene", "landmark",
                  "artwork", "OCR")
MME_COGNITION = ("commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning")


def mme_answer(text: str) -> str:
    """The MME tool's parsing: lower-cased, stripped, periods deleted; exactly yes/no, else "yes" or
    (failing that) "no" within the first 4 characters, else "other" (always wrong)."""
    text = text.lower().strip().replace(".", "")
    if text in ("yes", "no"):
        return text
    return "yes" if "yes" in text[:4] else "no" if "no" in text[:4] else "other"


def mme_scores(rows: Iterable[tuple[str, str, str, str]]) -> dict[str, Mapping[str, float]]:
    """``(subtask, image, prediction, label)`` rows -> per subtask acc, acc+ (every question of the
    image right) and score = 100*acc + 100*acc+; ``perception`` and ``cognition`` are sums of scores."""
    images: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    for subtask, image, prediction, label in rows:
        if label.lower() not in ("yes", "no"):
            raise ValueError(f"MME labels must be yes/no, got {label!r} ({subtask}/{image})")
        images[subtask][image].append(mme_answer(prediction) == label.lower())
    out: dict[str, Mapping[str, float]] = {}
    for subtask, per_image in sorted(images.items()):
        answers = [r for rights in per_image.values() for r in rights]
        acc = sum(answers) / len(answers)
        acc_plus = sum(all(rights) for rights in per_image.values()) / len(per_image)
        out[subtask] = {"acc": acc, "acc_plus": acc_plus, "score": 100 * acc + 100 * acc_plus}
    for category, members in (("perception", MME_PERCEPTION), ("cognition", MME_COGNITION)):
        present = [m for m in members if m in out]
        if present:
            out[category] = {"score": sum(out[m]["score"] for m in present), "subtasks": len(present)}
    return out
