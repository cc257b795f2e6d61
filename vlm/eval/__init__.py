"""Evaluation: ``generate.py`` is the batched generation core; one module per benchmark on top of it."""

from vlm.eval.generate import generate_answers
from vlm.eval.synthetic import SyntheticReport, TypeScore, evaluate_synthetic_vqa

__all__ = ["SyntheticReport", "TypeScore", "evaluate_synthetic_vqa", "generate_answers"]
