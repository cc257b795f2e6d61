"""Benchmark metrics against hand-worked cases (expected values worked out by hand in comments)."""

import pytest

from vlm.eval.metrics import (
    choice_letter,
    circular_accuracy,
    coco_box_to_normalised,
    gqa_match,
    grounding_accuracy,
    iou,
    mme_answer,
    mme_scores,
    normalize_answer,
    parse_box,
    pope_answer,
    pope_report,
    pope_scores,
    vqa_accuracy,
)


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("Two.", "2"),  # lower-case, trailing period dropped, number word -> digit
        ("The dog", "dog"),  # article dropped
        ("a an the cat", "cat"),
        ("dont", "don't"),  # contraction restored
        ("Im", "im"),  # capitalised table keys never match after lower-casing (as in the reference)
        ("none", "0"),
        ("3.5", "3.5"),  # period before a digit stays
        ("1,000", "1000"),  # commas go first
        ("yes!", "yes"),  # '!' at the end, not touching a space: replaced by a space, then stripped
        ("black-and-white", "black and white"),  # '-' not next to a space: becomes a space
        ("left - right", "left right"),  # '-' next to a space: removed; split/join squeezes spaces
        ("What's up?", "what 's up"),  # '?' removed, "'s" split off
        ("  red\tcar\n", "red car"),
    ],
)
def test_normalize_answer(raw, normalised):
    assert normalize_answer(raw) == normalised


@pytest.mark.parametrize(("k", "expected"), [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (10, 1.0)])
def test_vqa_leave_one_out(k, expected):
    # k of 10 humans said "2". Leaving out a matching answer leaves k-1 matches, otherwise k:
    # mean = (k*min(1,(k-1)/3) + (10-k)*min(1,k/3)) / 10; k=3: (3*2/3 + 7*1)/10 = 0.9
    answers = ["two"] * k + ["three"] * (10 - k)
    assert vqa_accuracy("2", answers) == pytest.approx(expected)


def test_vqa_accuracy_needs_answers():
    with pytest.raises(ValueError, match="at least one"):
        vqa_accuracy("2", [])


def test_gqa_match():
    assert gqa_match("Yes.", "yes") and not gqa_match("yes, it is", "yes")


@pytest.mark.parametrize(
    ("reply", "answer"),
    [
        ("No, there is not.", "no"),
        ("Yes, there is a dog.", "yes"),
        ("There is not a dog in the image.", "no"),
        ("Not at all.", "yes"),  # "Not" is not in the reference's case-sensitive word set
        ("Yes. No other objects.", "yes"),  # only the first sentence counts
        ("no", "no"),
        ("nope", "yes"),
    ],
)
def test_pope_answer(reply, answer):
    assert pope_answer(reply) == answer


def test_pope_scores_from_predictions():
    # labels  y y y n n n ; predictions y y n y n n  -> tp=2 fp=1 fn=1 tn=2
    scores = pope_scores(["Yes", "yes", "No", "Yes", "no", "No."], ["yes", "yes", "yes", "no", "no", "no"])
    assert scores["accuracy"] == pytest.approx(4 / 6)
    assert scores["precision"] == pytest.approx(2 / 3) and scores["recall"] == pytest.approx(2 / 3)
    assert scores["f1"] == pytest.approx(2 / 3)
    assert scores["yes_ratio"] == pytest.approx(3 / 6)  # of the predictions, not of the labels (3/6 too here)


def test_pope_report_means_over_splits():
    rows = [("random", "yes", "yes"), ("random", "no", "no"),  # perfect: f1 1
            ("popular", "yes", "yes"), ("popular", "yes", "no")]  # tp1 fp1: p .5 r 1 f1 2/3, yes_ratio 1
    report = pope_report(rows)
    assert report["random"]["f1"] == 1.0
    assert report["popular"]["f1"] == pytest.approx(2 / 3)
    assert report["mean"]["f1"] == pytest.approx((1 + 2 / 3) / 2)
    assert report["mean"]["yes_ratio"] == pytest.approx((0.5 + 1.0) / 2)


def test_pope_rejects_bad_labels():
    with pytest.raises(ValueError, match="'yes' or 'no'"):
        pope_scores(["yes"], ["maybe"])
    with pytest.raises(ValueError, match="as many labels"):
        pope_scores(["yes", "no"], ["yes"])


@pytest.mark.parametrize(
    ("reply", "parsed"), [("Yes.", "yes"), ("No", "no"), ("yes, it is", "yes"), ("Not sure", "no"),
                          ("It is yes", "other"), ("noun", "no")],
)
def test_mme_answer(reply, parsed):
    assert mme_answer(reply) == parsed


def test_mme_acc_and_acc_plus():
    rows = [
        ("existence", "1.jpg", "Yes", "Yes"), ("existence", "1.jpg", "No", "No"),  # image 1: both right
        ("existence", "2.jpg", "Yes", "Yes"), ("existence", "2.jpg", "Yes", "No"),  # image 2: one right
        ("code_reasoning", "3.png", "No", "Yes"), ("code_reasoning", "3.png", "No", "No"),
    ]
    scores = mme_scores(rows)
    # existence: acc 3/4, acc+ 1/2 -> 75 + 50 = 125 ; code_reasoning: acc 1/2, acc+ 0 -> 50
    assert scores["existence"]["score"] == pytest.approx(125.0)
    assert scores["code_reasoning"]["score"] == pytest.approx(50.0)
    assert scores["perception"]["score"] == pytest.approx(125.0) and scores["perception"]["subtasks"] == 1
    assert scores["cognition"]["score"] == pytest.approx(50.0)


@pytest.mark.parametrize(
    ("reply", "n", "letter"),
    [("B", 4, "B"), ("B. A cat", 4, "B"), ("C)", 4, "C"), ("The answer is A.", 4, "A"),
     ("E", 4, None), ("I think B", 4, None), ("b", 4, None), ("", 4, None)],
)
def test_choice_letter(reply, n, letter):
    assert choice_letter(reply, n) == letter


def test_circular_eval_needs_every_rotation():
    # question 7 asked in 3 rotations (7, 1000007, 2000007): one wrong -> not counted; question 8 all right
    rows = [(7, "A", "A"), (1_000_007, "B", "B"), (2_000_007, "A", "C"), (8, "D", "D"), (1_000_008, "A", "A")]
    assert circular_accuracy(rows) == 0.5


def test_boxes_parse_iou_and_frames():
    assert parse_box("It is at [0.10, 0.20, 0.50, 0.60].") == (0.1, 0.2, 0.5, 0.6)
    assert parse_box("(0.1, 0.2, 0.5, 0.6)") == (0.1, 0.2, 0.5, 0.6)  # parentheses too
    assert parse_box("somewhere on the left") is None
    # overlap 0.5x0.5=0.25; union 1 + 1 - 0.25 = 1.75
    assert iou((0, 0, 1, 1), (0.5, 0.5, 1.5, 1.5)) == pytest.approx(0.25 / 1.75)
    # 200x100 image, COCO box x=50 y=25 w=100 h=50
    assert coco_box_to_normalised((50, 25, 100, 50), 200, 100, pad_to_square=False) == (0.25, 0.25, 0.75, 0.75)
    # padded to a 200x200 square: 50 px above -> y1 = (25+50)/200, y2 = (75+50)/200
    assert coco_box_to_normalised((50, 25, 100, 50), 200, 100, pad_to_square=True) == (0.25, 0.375, 0.75, 0.625)


def test_grounding_accuracy_counts_unparseable_as_wrong():
    targets = [(0.0, 0.0, 0.5, 0.5), (0.0, 0.0, 0.5, 0.5), (0.0, 0.0, 0.5, 0.5)]
    # exact hit (IoU 1); half-shifted: overlap 0.25x0.5 = 0.125, union 0.375, IoU 1/3 (miss); no box (miss)
    replies = ["[0, 0, 0.5, 0.5]", "[0.25, 0, 0.75, 0.5]", "no idea"]
    assert iou((0.25, 0, 0.75, 0.5), targets[1]) == pytest.approx(1 / 3)
    assert grounding_accuracy(replies, targets) == pytest.approx(1 / 3)
    # a box with IoU exactly 0.5 counts: [0, 0, 0.5, 0.25] inside the target, half its area
    assert grounding_accuracy(["[0, 0, 0.5, 0.25]"], targets[:1]) == 1.0
