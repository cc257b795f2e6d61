"""Benchmark metrics computed exactly as the reference scripts do (see each function's docstring)."""

from vlm.eval.metrics.choice import (
    choice_letter,
    circular_accuracy,
    coco_box_to_normalised,
    grounding_accuracy,
    iou,
    parse_box,
)
from vlm.eval.metrics.pope import mme_answer, mme_scores, pope_answer, pope_report, pope_scores
from vlm.eval.metrics.vqa import gqa_match, normalize_answer, vqa_accuracy

__all__ = [
    "choice_letter",
    "circular_accuracy",
    "coco_box_to_normalised",
    "gqa_match",
    "grounding_accuracy",
    "iou",
    "mme_answer",
    "mme_scores",
    "normalize_answer",
    "parse_box",
    "pope_answer",
    "pope_report",
    "pope_scores",
    "vqa_accuracy",
]
