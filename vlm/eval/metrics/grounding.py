"""Grounding (RefCOCO / RefCOCO+ / RefCOCOg): box parsing, frames, IoU and Acc@0.5 (lmms-eval's refcoco).

Frames. Boxes are ``[x1, y1, x2, y2]``. COCO ground truth is ``[x, y, w, h]`` in pixels. Models reply
in [0, 1] of a frame: the image itself, or - for LLaVA-1.5, which was trained on boxes normalised to
the *padded square* - the square of side max(w, h) into which ``expand2square`` pastes the image at
offset ((side - w) // 2, (side - h) // 2) (integer division). Score a reply and its target in the same
frame. IoU does not change under per-axis scaling and shifting, so either frame gives the same score
once both boxes are in it; mixing frames is the error to avoid.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

Box = tuple[float, float, float, float]

_NUMBER = r"-?(?:\d+(?:\.\d*)?|\.\d+)"
_FOUR = rf"\s*({_NUMBER})\s*,\s*({_NUMBER})\s*,\s*({_NUMBER})\s*,\s*({_NUMBER})\s*"
_BOX = re.compile(rf"\[{_FOUR}\]|\({_FOUR}\)")


def _box(box: Sequence[float], what: str = "box") -> Box:
    if isinstance(box, str) or len(box) != 4:
        raise ValueError(f"a {what} needs 4 numbers, got {box!r}")
    values = tuple(float(v) for v in box)
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"a {what} must be finite, got {box!r}")
    return values  # type: ignore[return-value]


def _xyxy(box: Sequence[float], what: str = "box") -> Box:
    x1, y1, x2, y2 = _box(box, what)
    if x2 < x1 or y2 < y1:
        raise ValueError(f"a {what} must be [x1, y1, x2, y2] with x2 >= x1 and y2 >= y1, got {box!r}")
    return x1, y1, x2, y2


def _frame(width: int, height: int, pad_to_square: bool) -> tuple[int, int, int, int]:
    """(side_x, side_y, offset_x, offset_y) of the frame the normalised coordinates refer to."""
    if (
        isinstance(width, bool)
        or isinstance(height, bool)
        or not isinstance(width, int)
        or not isinstance(height, int)
    ):
        raise ValueError(f"image width and height must be ints, got {width!r} x {height!r}")
    if width <= 0 or height <= 0:
        raise ValueError(f"image width and height must be positive, got {width} x {height}")
    if not pad_to_square:
        return width, height, 0, 0
    side = max(width, height)
    return side, side, (side - width) // 2, (side - height) // 2


def parse_box(text: str) -> Box | None:
    """The first ``[x1, y1, x2, y2]`` in a reply, in square brackets or parentheses (lmms-eval only
    reads brackets), as floats; None when there is none (scored wrong)."""
    if not isinstance(text, str):
        raise ValueError(f"replies must be strings, got {type(text).__name__}")
    match = _BOX.search(text)
    if match is None:
        return None
    return tuple(float(v) for v in match.groups() if v is not None)  # type: ignore[return-value]


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two ``[x1, y1, x2, y2]`` boxes in the same frame (0.0 when both have
    zero area)."""
    a, b = _xyxy(a), _xyxy(b)
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union > 0 else 0.0


def coco_to_xyxy(box: Sequence[float]) -> Box:
    """COCO ``[x, y, w, h]`` -> ``[x1, y1, x2, y2]`` (same units)."""
    x, y, w, h = _box(box, "COCO box")
    if w < 0 or h < 0:
        raise ValueError(f"a COCO box needs non-negative width and height, got {box!r}")
    return x, y, x + w, y + h


def pixels_to_normalised(box: Sequence[float], width: int, height: int, *, pad_to_square: bool) -> Box:
    """A pixel ``[x1, y1, x2, y2]`` box of a ``width`` x ``height`` image -> [0, 1] of the image, or of
    the padded square when ``pad_to_square`` (LLaVA-1.5's frame)."""
    x1, y1, x2, y2 = _xyxy(box)
    sx, sy, ox, oy = _frame(width, height, pad_to_square)
    return (x1 + ox) / sx, (y1 + oy) / sy, (x2 + ox) / sx, (y2 + oy) / sy


def normalised_to_pixels(box: Sequence[float], width: int, height: int, *, pad_to_square: bool) -> Box:
    """The inverse of :func:`pixels_to_normalised`: a [0, 1] box of the image (or of its padded square)
    -> pixels of the original image (a box reaching into the padding gets coordinates outside it)."""
    x1, y1, x2, y2 = _xyxy(box)
    sx, sy, ox, oy = _frame(width, height, pad_to_square)
    return x1 * sx - ox, y1 * sy - oy, x2 * sx - ox, y2 * sy - oy


def coco_box_to_normalised(box: Sequence[float], width: int, height: int, *, pad_to_square: bool) -> Box:
    """A COCO ``[x, y, w, h]`` pixel box -> ``[x1, y1, x2, y2]`` in [0, 1] of the image, or of the padded
    square when ``pad_to_square`` (what a LLaVA-1.5 reply is to be compared with)."""
    return pixels_to_normalised(coco_to_xyxy(box), width, height, pad_to_square=pad_to_square)


def grounding_accuracy(
    predictions: Sequence[str], targets: Sequence[Sequence[float]], threshold: float = 0.5
) -> float:
    """Acc@threshold: the share of replies whose parsed box has IoU >= ``threshold`` with its target (in
    the same frame). Replies without a box, or with an inverted one (x2 < x1 or y2 < y1, IoU 0 in the
    reference), are wrong."""
    if isinstance(predictions, str):
        raise ValueError("predictions must be a sequence of replies, not a single string")
    if len(predictions) != len(targets) or not targets:
        raise ValueError(
            f"need as many targets as predictions, at least one (got {len(predictions)} and {len(targets)})"
        )
    if not 0 < threshold <= 1:
        raise ValueError(f"the IoU threshold must be in (0, 1], got {threshold}")
    hits = 0
    for reply, target in zip(predictions, targets, strict=True):
        target = _xyxy(target, "target box")
        box = parse_box(reply)
        if box is not None and box[2] >= box[0] and box[3] >= box[1]:
            hits += iou(box, target) >= threshold
    return hits / len(targets)
