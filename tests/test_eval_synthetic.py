"""Evaluation: batched generation equals unbatched, answer scoring, chance, the synthetic VQA report."""

import json

import numpy as np
import pytest
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

from vlm.eval.generate import generate_answers
from vlm.eval.synthetic import (
    QUESTION_TYPES,
    SyntheticReport,
    evaluate_synthetic_vqa,
    is_correct,
    majority_rate,
    normalize_answer,
    score_predictions,
)


@pytest.fixture(scope="module")
def tiny(built_models):
    path = built_models("tiny-clip", "mlp2x_gelu", "tiny-llama")
    return AutoModelForImageTextToText.from_pretrained(path), AutoProcessor.from_pretrained(path)


def _prompts(n: int) -> list:
    """Prompts of varying lengths with 0-2 images of different sizes each."""
    rng = np.random.default_rng(1)
    out = []
    for k in range(n):
        n_images = (1, 2, 0, 1)[k % 4]
        images = [
            Image.fromarray(rng.integers(0, 255, (48 + 8 * k, 96 - 4 * k + 7 * j, 3), dtype=np.uint8))
            for j in range(n_images)
        ]
        text = "What is shown " + "here and there " * k + "?"
        content = [{"type": "image"}] * n_images + [{"type": "text", "text": text}]
        out.append(([{"role": "user", "content": content}], images))
    return out


def test_batched_generation_equals_unbatched(tiny):
    model, processor = tiny
    prompts = _prompts(12)
    padding_side = processor.tokenizer.padding_side
    single = generate_answers(model, processor, prompts, batch_size=1, max_new_tokens=6)
    batched = generate_answers(model, processor, prompts, batch_size=8, max_new_tokens=6)
    assert batched == single
    assert len(single) == 12 and all(isinstance(a, str) and a == a.strip() for a in single)
    assert processor.tokenizer.padding_side == padding_side  # restored after each call
    assert generate_answers(model, processor, [], batch_size=8) == []


@pytest.mark.parametrize(
    ("prediction", "expected"),
    [
        ("Red.", "red"),
        ("  red circle", "red"),  # first word only
        ("Yes!\nThe circle is red.", "yes"),  # first line, then first word
        ("LEFT,", "left"),
        ("3", "3"),
        ("", ""),
        ("  \n", ""),
    ],
)
def test_normalize_answer(prediction, expected):
    assert normalize_answer(prediction) == expected


def test_is_correct_is_exact_after_normalisation():
    assert is_correct("Red.", "red")
    assert is_correct("red circle", "red")
    assert is_correct("3", "3")
    # No number-word mapping: counts are answered in digits in the data, so "three" is wrong.
    assert not is_correct("three", "3")
    assert not is_correct("reddish", "red")
    assert not is_correct("", "red")


def test_majority_rate_and_scoring_by_hand():
    assert majority_rate(["yes", "no", "yes", "yes"]) == 0.75
    assert majority_rate(["red", "blue", "green"]) == pytest.approx(1 / 3)
    assert majority_rate([]) == 0.0
    report = score_predictions(
        types=["count", "existence", "count", "existence", "existence"],
        questions=["q1", "q2", "q3", "q4", "q5"],
        predictions=["2", "Yes.", "three", "no", "yes"],
        answers=["2", "yes", "3", "yes", "yes"],
    )
    assert list(report.per_type) == ["count", "existence"]  # canonical type order
    assert report.per_type["count"].n == 2 and report.per_type["count"].accuracy == 0.5
    assert report.per_type["count"].chance == 0.5  # "2" and "3" once each
    assert report.per_type["existence"].accuracy == pytest.approx(2 / 3)
    assert report.per_type["existence"].chance == 1.0  # always "yes"
    assert report.overall.n == 5 and report.overall.accuracy == pytest.approx(3 / 5)
    assert report.overall.chance == pytest.approx((1 + 3) / 5)  # per-type majority, pooled
    assert report.examples == [("q1", "2", "2"), ("q2", "Yes.", "yes")]


def test_evaluate_synthetic_vqa_on_tiny_model(tiny):
    from vlm.data.synthetic import SyntheticWorld

    model, processor = tiny
    report = evaluate_synthetic_vqa(model, processor, n_images=6, batch_size=16)
    assert isinstance(report, SyntheticReport)
    world = SyntheticWorld("test", 96)
    records = [r for i in range(6) for r in world.records(i, "vqa")]
    assert set(report.per_type) == set(QUESTION_TYPES)
    for t, s in report.per_type.items():
        assert s.n == sum(r["type"] == t for r in records)
        assert 0.0 <= s.accuracy <= 1.0 and 0.0 < s.chance <= 1.0
    assert report.overall.n == len(records)
    table = report.table()
    assert all(t in table for t in QUESTION_TYPES) and "overall" in table and "chance %" in table
    assert len(report.examples) == len(QUESTION_TYPES)
    question, _, answer = report.examples[0]
    assert "<image>" not in question and answer
    assert json.loads(json.dumps(report.to_dict()))["overall"]["n"] == len(records)
