"""Multiple choice (ScienceQA-IMG, MMBench, SEED-Bench, AI2D) and grounding (RefCOCO/+/g) metrics."""

from __future__ import annotations

import re
import string
from collections import defaultdict
from collections.abc import Iterable, Sequence

_LETTER_FORMS = (
    re.compile(r"^([A-Z])$"),  # "B"
    re.compile(r"^([A-Z])[.):]"),  # "B." / "B)" / "B: ..."
    re.compile(r"^The answer is ([A-Z])\.?$"),  # ScienceQA's own phrasing
)


def choice_letter(text: str, n_options: int) -> str | None:
    """The option letter a reply picks, by rule (no judge model): a bare letter, a letter followed by
    '.', ')' or ':', or "The answer is X."; None (scored wrong) for anything else or a letter
    beyond the options."""
    if not 1 <= n_options <= 26:
        raise ValueError(f"n_options must be 1..26, got {n_options}")
    reply = text.strip()
    for form in _LETTER_FORMS:
        match = form.match(reply)
        if match and match.group(1) in string.ascii_uppercase[:n_options]:
            return match.group(1)
    return None


def circular_accuracy(rows: Iterable[tuple[int, str, str]]) -> float:
    """MMBench CircularEval: ``(index, predicted letter or None, answer letter)`` rows; a question
    (``index % 1_000_000``) counts only if every rotation of its options was answered right."""
    right: dict[int, bool] = defaultdict(lambda: True)
    for index, predicted, answer in rows:
        question = index % 1_000_000
        right[question] = right[question] and predicted == answer
    if not right:
        raise ValueError("no MMBench rows to score")
    return sum(right.values()) / len(right)


_NUMBER = r"-?\d+(?:\.\d+)?"
_BOX = re.compile(rf"[\[(]\s*({_NUMBER})\s*,\s*({_NUMBER})\s*,\s*({_NUMBER})\s*,\s*({_NUMBER})\s*[\])]")


def parse_box(text: str) -> tuple[float, float, float, float] | None:
    """The first ``[x1, y1, x2, y2]`` (brackets or parentheses) in a reply, or None (scored wrong)."""
    match = _BOX.search(text)
    return tuple(float(v) for v in match.groups()) if match else None  # type: ignore[return-value]


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two ``[x1, y1, x2, y2]`` boxes in the same frame."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union > 0 else 0.0


def coco_box_to_normalised(box: Sequence[float], width: int, height: int, pad_to_square: bool) -> tuple[float, ...]:
    """A COCO ``[x, y, w, h]`` pixel box as ``[x1, y1, x2, y2]`` in [0, 1] of the image, or of the
    centred square it is padded to (LLaVA-1.5's training frame) when ``pad_to_square``."""
    x, y, w, h = box
    side_x, side_y, off_x, off_y = width, height, 0.0, 0.0
    if pad_to_square:
        side = max(width, height)
        side_x = side_y = side
        off_x, off_y = (side - width) / 2, (side - height) / 2
    return ((x + off_x) / side_x, (y + off_y) / side_y, (x + w + off_x) / side_x, (y + h + off_y) / side_y)


def grounding_accuracy(predictions: Sequence[str], targets: Sequence[Sequence[float]], threshold: float = 0.5) -> float:
    """Acc@threshold: the share of replies whose parsed box has IoU >= threshold with its target
    (same frame); unparseable replies count as wrong."""
    if len(predictions) != len(targets) or not targets:
        raise ValueError(f"need as many targets as predictions (got {len(predictions)} and {len(targets)})")
    boxes = [parse_box(p) for p in predictions]
    return sum(b is not None and iou(b, t) >= threshold for b, t in zip(boxes, targets, strict=True)) / len(targets)
