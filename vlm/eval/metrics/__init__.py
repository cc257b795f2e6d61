"""Benchmark metrics computed exactly as the reference scripts do (each function's docstring names its
reference). Pure functions: strings and numbers in, numbers out; malformed input raises ValueError."""

from vlm.eval.metrics.choice import choice_accuracy, choice_letter, circular_accuracy, mmbench_letter
from vlm.eval.metrics.grounding import (
    coco_box_to_normalised,
    coco_to_xyxy,
    grounding_accuracy,
    iou,
    normalised_to_pixels,
    parse_box,
    pixels_to_normalised,
)
from vlm.eval.metrics.mme import MME_COGNITION, MME_PERCEPTION, mme_answer, mme_scores
from vlm.eval.metrics.pope import POPE_SPLITS, pope_answer, pope_report, pope_scores
from vlm.eval.metrics.vqa import (
    gqa_match,
    gqa_scores,
    normalize_answer,
    process_digit_article,
    process_punctuation,
    vqa_accuracy,
)

__all__ = [
    "MME_COGNITION",
    "MME_PERCEPTION",
    "POPE_SPLITS",
    "choice_accuracy",
    "choice_letter",
    "circular_accuracy",
    "coco_box_to_normalised",
    "coco_to_xyxy",
    "gqa_match",
    "gqa_scores",
    "grounding_accuracy",
    "iou",
    "mme_answer",
    "mme_scores",
    "mmbench_letter",
    "normalised_to_pixels",
    "normalize_answer",
    "parse_box",
    "pixels_to_normalised",
    "pope_answer",
    "pope_report",
    "pope_scores",
    "process_digit_article",
    "process_punctuation",
    "vqa_accuracy",
]
