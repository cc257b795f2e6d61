"""Benchmark metrics against hand-worked cases (each expected value is worked out by hand in a comment)."""

import pytest

from vlm.eval.metrics import (
    choice_accuracy,
    choice_letter,
    circular_accuracy,
    coco_box_to_normalised,
    coco_to_xyxy,
    gqa_match,
    gqa_scores,
    grounding_accuracy,
    iou,
    mmbench_letter,
    mme_answer,
    mme_scores,
    normalised_to_pixels,
    normalize_answer,
    parse_box,
    pixels_to_normalised,
    pope_answer,
    pope_report,
    pope_scores,
    vqa_accuracy,
)

# ---------------------------------------------------------------- VQA normalisation (EvalAI processor)


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("Two.", "2"),  # lower-case; '.' not before a digit dropped; number word -> digit
        ("ten", "10"),  # the map stops at ten ...
        ("eleven", "eleven"),  # ... so eleven stays a word
        ("none", "0"),  # "none" is in the number map too
        ("The dog", "dog"),  # article dropped
        ("a an the cat", "cat"),  # every article dropped
        ("dont", "don't"),  # contraction restored
        ("the dont", "don't"),  # articles go first, then contractions
        ("whats", "what's"),
        ("Im", "im"),  # the table's key is "Im": after lower-casing it can never match (reference quirk)
        ("3.5", "3.5"),  # period before a digit stays
        ("3.", "3"),  # period at the end goes
        ("3.5.", "3.5"),  # only the period not followed by a digit goes
        ("e.g.", "eg"),  # both periods go (neither precedes a digit)
        ("1,000", "1000"),  # EvalAI deletes every ',' up front
        ("yes!", "yes"),  # '!' touches no space: becomes a space, the split/join drops it
        ("black-and-white", "black and white"),  # '-' touches no space: becomes a space
        ("left - right", "left right"),  # '-' touches a space: deleted; split/join squeezes the spaces
        ("hello/world", "hello world"),  # '/' becomes a space
        ("x (y)", "x y"),  # '(' touches a space (" (") -> deleted; ')' does not -> space
        ("What's up?", "what 's up"),  # '?' deleted, "'s" split off ("'" is not in the 21 characters)
        ("  red\tcar\n", "red car"),  # strip, tab -> space
        ("red\ncar", "red car"),  # newline -> space
        ("." * 40, "." * 8),  # at most 32 periods are stripped (the reference's count=re.UNICODE=32)
        ("", ""),
    ],
)
def test_normalize_answer_evalai(raw, normalised):
    assert normalize_answer(raw) == normalised


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("Two.", "2"),  # the digit/article step lower-cases here too
        ("What's up?", "what's up"),  # no "'s" split; '?' touches no space -> space -> dropped
        ("yes, it is", "yes it is"),  # ',' touches a space -> deleted
        # digit-comma-digit anywhere -> every punctuation character is deleted, '-' included
        ("1,000-2,000", "10002000"),
    ],
)
def test_normalize_answer_official_vqa(raw, normalised):
    assert normalize_answer(raw, processor="vqa") == normalised


def test_digit_comma_rule_differs_between_processors():
    # EvalAI deletes the commas first ("1000-2000"), so no digit-comma remains: '-' becomes a space
    assert normalize_answer("1,000-2,000") == "1000 2000"


# ---------------------------------------------------------------- VQA accuracy


@pytest.mark.parametrize(("k", "expected"), [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (10, 1.0)])
def test_vqa_leave_one_out(k, expected):
    # k of 10 humans said "two" (-> "2"). Leaving out a matching answer leaves k-1 matches, otherwise k:
    # mean = (k*min(1,(k-1)/3) + (10-k)*min(1,k/3)) / 10
    # k=1: (0 + 9/3)/10 = 0.3 ; k=2: (2/3 + 16/3)/10 = 0.6 ; k=3: (3*2/3 + 7)/10 = 0.9 ; k=4: (4 + 6)/10 = 1
    answers = ["two"] * k + ["three"] * (10 - k)
    assert vqa_accuracy("2", answers) == pytest.approx(expected)


def test_vqa_official_normalises_ground_truths_only_by_punctuation_when_they_disagree():
    answers = ["2", "2", "two", "two"] + ["3"] * 6
    # EvalAI: "two" -> "2", so 4 humans match -> 1.0
    assert vqa_accuracy("2", answers) == pytest.approx(1.0)
    # official: ground truths get the punctuation step only, "two" stays "two": 2 matches -> 0.6
    assert vqa_accuracy("2", answers, processor="vqa") == pytest.approx(0.6)


def test_vqa_official_leaves_unanimous_ground_truths_untouched():
    # ten identical "Yes": not normalised at all; the prediction becomes "yes" -> no match at all
    assert vqa_accuracy("yes", ["Yes"] * 10, processor="vqa") == 0.0
    assert vqa_accuracy("yes", ["Yes"] * 10) == 1.0  # EvalAI lower-cases every ground truth


def test_vqa_accuracy_rejects_malformed_input():
    with pytest.raises(ValueError, match="at least 2"):
        vqa_accuracy("2", [])
    with pytest.raises(ValueError, match="at least 2"):
        vqa_accuracy("2", "two")  # a bare string is not a list of answers
    with pytest.raises(ValueError, match="unknown answer processor"):
        vqa_accuracy("2", ["2"] * 10, processor="lmms")
    with pytest.raises(ValueError, match="strings"):
        vqa_accuracy(2, ["2"] * 10)


# ---------------------------------------------------------------- GQA


@pytest.mark.parametrize(
    ("prediction", "answer", "right"),
    [
        ("Yes.", "yes", True),  # trailing period stripped, lower-cased
        ("Left...", "left", True),  # every trailing period goes
        (" no ", "no", True),  # stripped as LLaVA's generation strips replies
        ("yes, it is", "yes", False),  # no other normalisation
        ("the table", "table", False),  # articles stay
        ("yes", "Yes", False),  # the gold answer is compared verbatim
    ],
)
def test_gqa_match(prediction, answer, right):
    assert gqa_match(prediction, answer) is right


def test_gqa_scores_open_and_binary():
    rows = [("yes", "yes", "verify"), ("left", "right", "query"), ("Table.", "table", "query")]
    # all: 2 of 3 right ; open (query): 1 of 2 ; binary (verify): 1 of 1
    assert gqa_scores(rows) == pytest.approx({"accuracy": 2 / 3, "open": 0.5, "binary": 1.0})
    with pytest.raises(ValueError, match="structural type"):
        gqa_scores([("yes", "yes", "exist")])
    with pytest.raises(ValueError, match="no GQA rows"):
        gqa_scores([])


# ---------------------------------------------------------------- POPE


@pytest.mark.parametrize(
    ("reply", "answer"),
    [
        ("No, there is not.", "no"),
        ("Yes, there is a dog.", "yes"),
        ("Yes, there is no dog.", "no"),  # "no" anywhere in the first sentence
        ("There is not a dog in the image.", "no"),
        ("The answer is no", "no"),
        ("Not at all.", "yes"),  # "Not" is not in the case-sensitive word set
        ("NO", "yes"),  # neither is "NO"
        ("No!", "yes"),  # "No!" is one word, not "No"
        ("no\nthere is none", "yes"),  # split on single spaces only: "no\nthere" is one word
        ("I don't think so", "yes"),
        ("Yes. No other objects.", "yes"),  # only the first sentence counts
        ("no", "no"),
        ("nope", "yes"),
        ("", "yes"),
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
    assert (scores["tp"], scores["fp"], scores["tn"], scores["fn"]) == (2, 1, 2, 1)


def test_pope_yes_ratio_is_of_the_predictions():
    # labels y n n n, always "Yes": tp=1 fp=3 -> acc 1/4, precision 1/4, recall 1,
    # f1 = 2 * 0.25 * 1 / 1.25 = 0.4 ; yes-ratio 4/4 = 1 (of the labels it would be 1/4)
    scores = pope_scores(["Yes"] * 4, ["yes", "no", "no", "no"])
    assert scores["accuracy"] == pytest.approx(0.25) and scores["precision"] == pytest.approx(0.25)
    assert scores["recall"] == 1.0 and scores["f1"] == pytest.approx(0.4)
    assert scores["yes_ratio"] == 1.0


def test_pope_scores_with_no_yes_predicted():
    # the reference divides by zero here; we report 0: tn=1 fn=1 -> acc 1/2
    scores = pope_scores(["No", "No"], ["yes", "no"])
    assert (scores["precision"], scores["recall"], scores["f1"], scores["yes_ratio"]) == (0.0, 0.0, 0.0, 0.0)
    assert scores["accuracy"] == 0.5


def test_pope_report_means_over_splits():
    rows = [
        ("random", "yes", "yes"),
        ("random", "no", "no"),  # perfect: f1 1, yes-ratio 1/2
        ("popular", "yes", "yes"),
        ("popular", "yes", "no"),
    ]  # tp1 fp1: p .5 r 1 f1 2/3, yes-ratio 1
    report = pope_report(rows)
    assert list(report) == ["random", "popular", "mean"]
    assert report["random"]["f1"] == 1.0
    assert report["popular"]["f1"] == pytest.approx(2 / 3)
    assert report["mean"]["f1"] == pytest.approx((1 + 2 / 3) / 2)  # LLaVA's POPE number
    assert report["mean"]["yes_ratio"] == pytest.approx((0.5 + 1.0) / 2)
    assert report["mean"]["tp"] == 2 and report["mean"]["fp"] == 1  # counts are summed


def test_pope_rejects_malformed_input():
    with pytest.raises(ValueError, match="'yes' or 'no'"):
        pope_scores(["yes"], ["maybe"])
    with pytest.raises(ValueError, match="'yes' or 'no'"):
        pope_scores(["yes"], ["Yes"])  # labels are lower-case in every POPE file
    with pytest.raises(ValueError, match="as many labels"):
        pope_scores(["yes", "no"], ["yes"])
    with pytest.raises(ValueError, match="as many labels"):
        pope_scores([], [])
    with pytest.raises(ValueError, match="reserved"):
        pope_report([("mean", "yes", "yes")])
    with pytest.raises(ValueError, match="no POPE rows"):
        pope_report([])


# ---------------------------------------------------------------- MME


@pytest.mark.parametrize(
    ("reply", "parsed"),
    [
        ("Yes", "yes"),
        ("No.", "no"),  # not exactly "no"; "no" within "no." (first 4 characters)
        ("yes, it is", "yes"),
        ("Not sure", "no"),  # "not " holds "no"
        ("noun", "no"),
        ("yesno", "yes"),  # "yes" is tried before "no"
        ("  YES  ", "yes"),  # stripped and lower-cased
        ("It is yes", "other"),  # "it i" holds neither
        ("..yes", "other"),  # "..ye": the MME tool does not delete periods (lmms-eval would say yes)
        ("Sure", "other"),
        ("", "other"),
    ],
)
def test_mme_answer(reply, parsed):
    assert mme_answer(reply) == parsed


def test_mme_acc_and_acc_plus():
    rows = [
        ("existence", "1.jpg", "Yes", "Yes"),
        ("existence", "1.jpg", "No", "No"),  # image 1: both right
        ("existence", "2.jpg", "Yes", "Yes"),
        ("existence", "2.jpg", "Yes", "No"),  # image 2: one right
        ("count", "4.jpg", "maybe", "yes"),
        ("count", "4.jpg", "no", "no"),  # "other" is wrong
        ("code_reasoning", "3.png", "No", "Yes"),
        ("code_reasoning", "3.png", "No", "No"),
    ]
    scores = mme_scores(rows)
    # existence: acc 3/4, acc+ 1/2 -> 75 + 50 = 125
    assert scores["existence"] == pytest.approx({"acc": 0.75, "acc_plus": 0.5, "score": 125.0, "other": 0})
    # count: acc 1/2, acc+ 0 -> 50, one "other" ; code_reasoning: acc 1/2, acc+ 0 -> 50
    assert scores["count"]["score"] == pytest.approx(50.0) and scores["count"]["other"] == 1
    assert scores["code_reasoning"]["score"] == pytest.approx(50.0)
    # perception = 125 + 50 over 2 of its 10 subtasks ; cognition = 50 over 1 of 4
    assert scores["perception"] == pytest.approx({"score": 175.0, "subtasks": 2})
    assert scores["cognition"] == pytest.approx({"score": 50.0, "subtasks": 1})


def test_mme_rejects_malformed_input():
    with pytest.raises(ValueError, match="exactly 2 questions"):
        mme_scores([("scene", "a.jpg", "yes", "yes")])
    with pytest.raises(ValueError, match="exactly 2 questions"):
        mme_scores([("scene", "a.jpg", "yes", "yes")] * 3)
    with pytest.raises(ValueError, match="unknown MME subtask"):
        mme_scores([("ocr", "a.jpg", "yes", "yes")] * 2)  # the subtask is spelt "OCR"
    with pytest.raises(ValueError, match="yes/no"):
        mme_scores([("scene", "a.jpg", "yes", "maybe")] * 2)
    with pytest.raises(ValueError, match="no MME rows"):
        mme_scores([])


# ---------------------------------------------------------------- multiple choice


@pytest.mark.parametrize(
    ("reply", "n", "letter"),
    [
        ("B", 4, "B"),  # bare letter
        (" C \n", 4, "C"),  # stripped first
        ("B. A cat", 4, "B"),  # letter, '.', space
        ("B.", 4, None),  # no space after the period: the reference does not read it
        ("B)", 4, None),
        ("The answer is A.", 4, "A"),
        ("Both are mammals. The answer is C.", 4, "C"),
        ("The answer is B!", 4, "B"),  # the reference's '.' matches any character
        ("The answer is B", 4, None),  # ... but needs one
        ("The answer is A. The answer is B.", 4, None),  # two matches: failed
        ("E", 4, None),  # beyond the options
        ("E. x", 4, None),
        ("C. The answer is A.", 2, None),  # rule 2 picks C (beyond 2 options): no fall-through to rule 3
        ("A", 1, "A"),
        ("b", 4, None),  # lower-case is not a letter answer
        ("I think B", 4, None),
        ("", 4, None),
    ],
)
def test_choice_letter_scienceqa(reply, n, letter):
    assert choice_letter(reply, n) == letter


@pytest.mark.parametrize(
    ("reply", "letter"), [("B", "B"), ("B.", None), ("B. cat", None), ("E", None), (" D", "D")]
)
def test_choice_letter_exact(reply, letter):
    # LLaVA's SEED-Bench scoring: the (stripped) reply must be the letter itself
    assert choice_letter(reply, 4, rule="exact") == letter


def test_choice_letter_rejects_malformed_input():
    for n in (0, 27, 4.0):
        with pytest.raises(ValueError, match="n_options"):
            choice_letter("A", n)
    with pytest.raises(ValueError, match="unknown letter rule"):
        choice_letter("A", 4, rule="mmbench")


OPTIONS = {"A": "cat", "B": "dog", "C": "bird", "D": "fish"}


@pytest.mark.parametrize(
    ("reply", "letter"),
    [
        ("B", "B"),
        ("D.", "D"),
        ("(B) dog", "B"),  # '(' and ')' become spaces: words "B", "dog"
        ("The answer is B.", "B"),  # exactly one option letter among the words
        ("A dog", "A"),  # the article reads as option A (the quantifier guard is off without VERBOSE)
        ("A or B", None),  # two letters, and no option text in "a or b"
        ("It is a dog", "B"),  # no capital letter word: option text "dog" occurs
        ("bird**", "C"),  # '*' becomes a space; then by text
        ("a cat and a dog", None),  # two option texts
        ("Catfish", None),  # "cat" and "fish" both occur
        ("Z", None),  # "none of these"
        ("Cannot determine the answer", None),  # a refusal
        ("", None),
    ],
)
def test_mmbench_letter(reply, letter):
    assert mmbench_letter(reply, OPTIONS) == letter


def test_mmbench_letter_rejects_malformed_options():
    with pytest.raises(ValueError, match="at least one option"):
        mmbench_letter("A", {})
    with pytest.raises(ValueError, match="capital letters"):
        mmbench_letter("A", {"a": "cat"})
    with pytest.raises(ValueError, match="empty text"):
        mmbench_letter("A", {"A": " "})


def test_choice_accuracy():
    # A right, None (unparseable) wrong, C vs D wrong -> 1/3
    assert choice_accuracy(["A", None, "C"], ["A", "B", "D"]) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="as many answers"):
        choice_accuracy(["A"], ["A", "B"])


def test_circular_eval_needs_every_rotation():
    # question 7 asked in 3 rotations (7, 1000007, 2000007), one wrong -> 0; question 8 all right -> 1;
    # question 9 unparseable (None) -> 0 ; accuracy 1/3
    rows = [
        (7, "A", "A"),
        (1_000_007, "B", "B"),
        (2_000_007, "A", "C"),
        (8, "D", "D"),
        (1_000_008, "A", "A"),
        (9, None, "B"),
    ]
    assert circular_accuracy(rows) == pytest.approx(1 / 3)


def test_circular_eval_rejects_malformed_input():
    with pytest.raises(ValueError, match="no MMBench rows"):
        circular_accuracy([])
    with pytest.raises(ValueError, match="single capital letters"):
        circular_accuracy([(1, "A", "a")])
    with pytest.raises(ValueError, match="non-negative ints"):
        circular_accuracy([(-1, "A", "A")])


# ---------------------------------------------------------------- grounding


@pytest.mark.parametrize(
    ("reply", "box"),
    [
        ("It is at [0.10, 0.20, 0.50, 0.60].", (0.1, 0.2, 0.5, 0.6)),
        ("(0.1,0.2,0.5,0.6)", (0.1, 0.2, 0.5, 0.6)),  # parentheses too
        ("[.1, .2, .5, .6]", (0.1, 0.2, 0.5, 0.6)),
        ("[1, 2, 3, 4]", (1.0, 2.0, 3.0, 4.0)),
        ("[-0.1, 0, 1, 1]", (-0.1, 0.0, 1.0, 1.0)),
        ("first [0, 0, 1, 1] then [0.5, 0.5, 1, 1]", (0.0, 0.0, 1.0, 1.0)),  # the first box
        ("[0.1, 0.2, 0.5]", None),  # three numbers
        ("[0.1, 0.2, 0.5, 0.6)", None),  # mismatched brackets
        ("somewhere on the left", None),
    ],
)
def test_parse_box(reply, box):
    assert parse_box(reply) == box


def test_iou():
    # overlap 0.5 x 0.5 = 0.25 ; union 1 + 1 - 0.25 = 1.75
    assert iou((0, 0, 1, 1), (0.5, 0.5, 1.5, 1.5)) == pytest.approx(0.25 / 1.75)
    assert iou((0, 0, 1, 1), (0, 0, 1, 1)) == 1.0
    assert iou((0, 0, 1, 1), (0, 0, 2, 2)) == pytest.approx(0.25)  # contained: 1 / 4
    assert iou((0, 0, 1, 1), (1, 0, 2, 1)) == 0.0  # touching edges
    assert iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0  # disjoint
    assert iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0  # no area at all
    with pytest.raises(ValueError, match="x2 >= x1"):
        iou((1, 0, 0, 1), (0, 0, 1, 1))
    with pytest.raises(ValueError, match="4 numbers"):
        iou((0, 0, 1), (0, 0, 1, 1))


def test_coco_boxes_in_image_and_padded_square_frames():
    assert coco_to_xyxy((50, 25, 100, 50)) == (50, 25, 150, 75)
    # 200x100 image, COCO box x=50 y=25 w=100 h=50 -> x 50..150 of 200, y 25..75 of 100
    assert coco_box_to_normalised((50, 25, 100, 50), 200, 100, pad_to_square=False) == (
        0.25,
        0.25,
        0.75,
        0.75,
    )
    # padded to a 200x200 square, pasted 50 px down: y1 = (25+50)/200, y2 = (75+50)/200
    assert coco_box_to_normalised((50, 25, 100, 50), 200, 100, pad_to_square=True) == (
        0.25,
        0.375,
        0.75,
        0.625,
    )
    # portrait 100x300: square side 300, pasted 100 px right -> x (10+100)/300, (30+100)/300 ; y 30/300, 90/300
    assert coco_box_to_normalised((10, 30, 20, 60), 100, 300, pad_to_square=True) == pytest.approx(
        (110 / 300, 0.1, 130 / 300, 0.3)
    )


def test_padded_square_offset_uses_integer_division():
    # 200x101: expand2square pastes at (200 - 101) // 2 = 49 (not 49.5): y1 = 49/200, y2 = (101+49)/200
    assert coco_box_to_normalised((0, 0, 200, 101), 200, 101, pad_to_square=True) == (0.0, 0.245, 1.0, 0.75)


def test_frames_round_trip_and_mixing_them_costs_iou():
    # the padded-square box above back to pixels: x 0.25*200 = 50 .. 150 ; y 0.375*200 - 50 = 25 .. 75
    assert normalised_to_pixels((0.25, 0.375, 0.75, 0.625), 200, 100, pad_to_square=True) == (50, 25, 150, 75)
    assert pixels_to_normalised((50, 25, 150, 75), 200, 100, pad_to_square=False) == (0.25, 0.25, 0.75, 0.75)
    # a perfect LLaVA-1.5 reply (square frame) scored against the image-frame target: y 0.375..0.625 inside
    # 0.25..0.75 -> overlap 0.5*0.25 = 0.125, union 0.25 -> IoU 0.5 instead of 1
    assert iou((0.25, 0.375, 0.75, 0.625), (0.25, 0.25, 0.75, 0.75)) == pytest.approx(0.5)


def test_frames_reject_malformed_input():
    with pytest.raises(ValueError, match="positive"):
        coco_box_to_normalised((0, 0, 1, 1), 0, 100, pad_to_square=False)
    with pytest.raises(ValueError, match="ints"):
        coco_box_to_normalised((0, 0, 1, 1), 200.0, 100, pad_to_square=False)
    with pytest.raises(ValueError, match="non-negative width"):
        coco_to_xyxy((0, 0, -1, 1))


def test_grounding_accuracy_counts_unparseable_and_inverted_as_wrong():
    targets = [(0.0, 0.0, 0.5, 0.5)] * 4
    # exact hit (IoU 1); half-shifted: overlap 0.25x0.5 = 0.125, union 0.375, IoU 1/3 (miss); no box (miss);
    # inverted box (miss) -> 1/4
    replies = ["[0, 0, 0.5, 0.5]", "[0.25, 0, 0.75, 0.5]", "no idea", "[0.5, 0, 0, 0.5]"]
    assert iou((0.25, 0, 0.75, 0.5), targets[1]) == pytest.approx(1 / 3)
    assert grounding_accuracy(replies, targets) == pytest.approx(1 / 4)
    # IoU exactly 0.5 counts: [0, 0, 0.5, 0.25] inside the target, half its area (0.125 / 0.25)
    assert grounding_accuracy(["[0, 0, 0.5, 0.25]"], targets[:1]) == 1.0
    assert grounding_accuracy(["[0, 0, 0.5, 0.25]"], targets[:1], threshold=0.75) == 0.0


def test_grounding_accuracy_rejects_malformed_input():
    with pytest.raises(ValueError, match="as many targets"):
        grounding_accuracy(["[0, 0, 1, 1]"], [])
    with pytest.raises(ValueError, match="threshold"):
        grounding_accuracy(["[0, 0, 1, 1]"], [(0, 0, 1, 1)], threshold=0)
    with pytest.raises(ValueError, match="target box"):
        grounding_accuracy(["[0, 0, 1, 1]"], [(1, 1, 0, 0)])
