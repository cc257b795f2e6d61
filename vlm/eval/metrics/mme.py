"""MME, scored as the MME tool (``eval_tool/calculation.py``) does after LLaVA's ``convert_answer_to_mme``.

Each image has exactly two yes/no questions. Per subtask: acc (per question), acc+ (per image, both
questions right), score = 100*acc + 100*acc+ (max 200). Perception sums 10 subtasks (max 2000),
cognition 4 (max 800). lmms-eval parses replies slightly differently (it also strips and deletes
periods before the prefix test); we follow the MME tool.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

MME_PERCEPTION = (
    "existence",
    "count",
    "position",
    "color",
    "posters",
    "celebrity",
    "scene",
    "landmark",
    "artwork",
    "OCR",
)
MME_COGNITION = ("commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning")


def mme_answer(text: str) -> str:
    """The MME tool's parsing of a reply (stripped, as LLaVA's generation strips it): lower-cased; exactly
    "yes"/"no" is taken as is; otherwise "yes" within the first 4 characters gives "yes", else "no"
    within them gives "no" (so "noun" reads as no), else "other", which is always wrong."""
    if not isinstance(text, str):
        raise ValueError(f"MME predictions must be strings, got {type(text).__name__}")
    text = text.strip().lower()
    if text in ("yes", "no"):
        return text
    prefix = text[:4]
    return "yes" if "yes" in prefix else "no" if "no" in prefix else "other"


def mme_scores(rows: Iterable[tuple[str, str, str, str]]) -> dict[str, dict[str, float]]:
    """``(subtask, image, prediction, label)`` rows -> for each subtask present ``acc``, ``acc_plus``,
    ``score`` (100*acc + 100*acc+) and ``other`` (replies parsed as neither yes nor no); ``perception``
    and ``cognition`` hold the ``score`` summed over their subtasks present and the count ``subtasks``
    (10 and 4 in a full run). Labels are yes/no in any case; every image needs exactly two questions."""
    known = set(MME_PERCEPTION) | set(MME_COGNITION)
    images: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    other: dict[str, int] = defaultdict(int)
    for subtask, image, prediction, label in rows:
        if subtask not in known:
            raise ValueError(f"unknown MME subtask {subtask!r}; known: {sorted(known)}")
        if not isinstance(label, str) or label.lower() not in ("yes", "no"):
            raise ValueError(f"MME labels must be yes/no, got {label!r} ({subtask}/{image})")
        parsed = mme_answer(prediction)
        other[subtask] += parsed == "other"
        images[subtask][image].append(parsed == label.lower())
    if not images:
        raise ValueError("no MME rows to score")
    out: dict[str, dict[str, float]] = {}
    for subtask in [*MME_PERCEPTION, *MME_COGNITION]:
        if subtask not in images:
            continue
        per_image = images[subtask]
        odd = sorted(name for name, rights in per_image.items() if len(rights) != 2)
        if odd:
            raise ValueError(
                f"MME scores question pairs: {subtask} images {odd[:5]} do not have exactly 2 questions"
            )
        answers = [right for rights in per_image.values() for right in rights]
        acc = sum(answers) / len(answers)
        acc_plus = sum(all(rights) for rights in per_image.values()) / len(per_image)
        out[subtask] = {
            "acc": acc,
            "acc_plus": acc_plus,
            "score": 100 * acc + 100 * acc_plus,
            "other": other[subtask],
        }
    for category, members in (("perception", MME_PERCEPTION), ("cognition", MME_COGNITION)):
        present = [m for m in members if m in out]
        if present:
            out[category] = {"score": sum(out[m]["score"] for m in present), "subtasks": len(present)}
    return out
