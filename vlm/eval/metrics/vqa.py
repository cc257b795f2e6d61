"""VQA accuracy (VQAv2, TextVQA, VizWiz) and GQA exact match, as the reference scripts compute them.

Two answer processors exist and both are here (``processor=``):

* ``"evalai"`` (default) - the EvalAI answer processor that LLaVA (``llava/eval/m4c_evaluator.py``,
  TextVQA) and lmms-eval (VQAv2, TextVQA, VizWiz) use. It is applied to the prediction and to
  *every* ground-truth answer. It first lower-cases and deletes every ',' and '?', so its
  digit-comma rule never fires.
* ``"vqa"`` - the official VQA script (GT-Vision-Lab ``vqaEval.py``, also behind the VQAv2 / VizWiz
  evaluation servers): the prediction gets the full normalisation, the ground truths only the
  punctuation step and only when the ten answers disagree (so a ground truth "two" never matches).

Shared quirks kept on purpose: at most 32 periods are stripped (the reference passes ``re.UNICODE``,
which is 32, as ``count``), and capitalised contraction keys ("Im") can never match after lower-casing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

Processor = Literal["evalai", "vqa"]

# key:value pairs of the processor's contraction table (keys with capitals can never match after
# lower-casing; the reference has the same dead entries, so scores are unaffected)
_CONTRACTION_PAIRS = """
aint:ain't arent:aren't cant:can't couldve:could've couldnt:couldn't couldn'tve:couldn't've
couldnt've:couldn't've didnt:didn't doesnt:doesn't dont:don't hadnt:hadn't hadnt've:hadn't've
hadn'tve:hadn't've hasnt:hasn't havent:haven't hed:he'd hed've:he'd've he'dve:he'd've hes:he's
howd:how'd howll:how'll hows:how's Id've:I'd've I'dve:I'd've Im:I'm Ive:I've isnt:isn't itd:it'd
itd've:it'd've it'dve:it'd've itll:it'll let's:let's maam:ma'am mightnt:mightn't
mightnt've:mightn't've mightn'tve:mightn't've mightve:might've mustnt:mustn't mustve:must've
neednt:needn't notve:not've oclock:o'clock oughtnt:oughtn't ow's'at:'ow's'at 'ows'at:'ow's'at
'ow'sat:'ow's'at shant:shan't shed've:she'd've she'dve:she'd've she's:she's shouldve:should've
shouldnt:shouldn't shouldnt've:shouldn't've shouldn'tve:shouldn't've somebody'd:somebodyd
somebodyd've:somebody'd've somebody'dve:somebody'd've somebodyll:somebody'll somebodys:somebody's
someoned:someone'd someoned've:someone'd've someone'dve:someone'd've someonell:someone'll
someones:someone's somethingd:something'd somethingd've:something'd've
something'dve:something'd've somethingll:something'll thats:that's thered:there'd
thered've:there'd've there'dve:there'd've therere:there're theres:there's theyd:they'd
theyd've:they'd've they'dve:they'd've theyll:they'll theyre:they're theyve:they've twas:'twas
wasnt:wasn't wed've:we'd've we'dve:we'd've weve:we've werent:weren't whatll:what'll whatre:what're
whats:what's whatve:what've whens:when's whered:where'd wheres:where's whereve:where've whod:who'd
whod've:who'd've who'dve:who'd've wholl:who'll whos:who's whove:who've whyll:why'll whyre:why're
whys:why's wont:won't wouldve:would've wouldnt:wouldn't wouldnt've:wouldn't've
wouldn'tve:wouldn't've yall:y'all yall'll:y'all'll y'allll:y'all'll yall'd've:y'all'd've
y'alld've:y'all'd've y'all'dve:y'all'd've youd:you'd youd've:you'd've you'dve:you'd've
youll:you'll youre:you're youve:you've
"""
CONTRACTIONS: dict[str, str] = dict(pair.split(":", 1) for pair in _CONTRACTION_PAIRS.split())
NUMBERS: dict[str, str] = {
    w: str(i) for i, w in enumerate("zero one two three four five six seven eight nine ten".split())
}
NUMBERS["none"] = "0"
ARTICLES = frozenset(("a", "an", "the"))
PUNCTUATION = tuple(';/[]"{}()=+\\_-><@`,?!')  # the 21 characters, in the reference's order
_NUMBER_COMMA = {"evalai": re.compile(r"(?<=\d),+(?=\d)"), "vqa": re.compile(r"\d,\d")}
_PERIOD_NOT_BEFORE_DIGIT = re.compile(r"\.(?!\d)")
_PERIOD_LIMIT = 32


def _check_processor(processor: str) -> None:
    if processor not in _NUMBER_COMMA:
        raise ValueError(f"unknown answer processor {processor!r}; use 'evalai' or 'vqa'")


def process_punctuation(text: str, processor: Processor = "evalai") -> str:
    """The punctuation step: each of the 21 characters is deleted when it touches a space somewhere in
    the text or when the text holds a digit-comma-digit, else replaced by a space; then periods not
    followed by a digit are deleted (at most 32 of them)."""
    _check_processor(processor)
    number_comma = _NUMBER_COMMA[processor].search(text) is not None
    out = text
    for p in PUNCTUATION:
        out = out.replace(p, "" if number_comma or p + " " in text or " " + p in text else " ")
    return _PERIOD_NOT_BEFORE_DIGIT.sub("", out, count=_PERIOD_LIMIT)


def process_digit_article(text: str) -> str:
    """The digit/article step: lower-case, split on whitespace, number words zero..ten (and "none")
    to digits, drop a/an/the, restore contractions ("dont" -> "don't"), join with single spaces."""
    words = [NUMBERS.get(w, w) for w in text.lower().split()]
    return " ".join(CONTRACTIONS.get(w, w) for w in words if w not in ARTICLES)


def normalize_answer(answer: str, processor: Processor = "evalai") -> str:
    """Full answer normalisation. ``"evalai"``: lower-case, delete ',' and '?', split off "'s", then
    newlines/tabs to spaces, strip, punctuation step, digit/article step ("Two." -> "2").
    ``"vqa"``: the same without the first three edits (the official script's prediction path)."""
    _check_processor(processor)
    if not isinstance(answer, str):
        raise ValueError(f"answers must be strings, got {type(answer).__name__}")
    text = answer
    if processor == "evalai":
        text = text.lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()
    text = text.replace("\n", " ").replace("\t", " ").strip()
    return process_digit_article(process_punctuation(text, processor))


def vqa_accuracy(prediction: str, answers: Sequence[str], processor: Processor = "evalai") -> float:
    """VQA accuracy of one prediction against the human answers (10 in VQAv2, TextVQA, VizWiz): for
    each answer left out, min(1, matches among the others / 3); the mean of those. A prediction given
    by k of 10 humans scores 0, 0.3, 0.6, 0.9, 1.0 for k = 0, 1, 2, 3, >=4.
    Matches LLaVA's ``TextVQAAccuracyEvaluator`` / lmms-eval (``"evalai"``) or the official
    ``vqaEval.py`` (``"vqa"``); see the module docstring for how they differ."""
    if isinstance(answers, str) or len(answers) < 2:
        raise ValueError("VQA accuracy needs a sequence of at least 2 human answers (the benchmarks have 10)")
    pred = normalize_answer(prediction, processor)
    if processor == "evalai":
        gts = [normalize_answer(a, processor) for a in answers]
    elif len(set(answers)) > 1:
        gts = [process_punctuation(a, processor) for a in answers]
    else:
        gts = list(answers)
    scores = [min(1.0, sum(g == pred for j, g in enumerate(gts) if j != i) / 3) for i in range(len(gts))]
    return sum(scores) / len(scores)


def gqa_match(prediction: str, answer: str) -> bool:
    """LLaVA's GQA scoring (``convert_gqa_for_eval.py`` then GQA's ``eval.py``): the reply, stripped as
    LLaVA's generation strips it, loses trailing periods and is lower-cased, then must equal the gold
    answer exactly (gold answers are lower-case already and are not altered)."""
    return prediction.strip().rstrip(".").lower() == answer


def gqa_scores(rows: Sequence[tuple[str, str, str]]) -> dict[str, float]:
    """``(prediction, answer, structural type)`` rows -> ``accuracy``, ``open`` and ``binary``, split as
    GQA's ``eval.py`` does: "open" is structural type ``query``, the rest (verify, logical, choose,
    compare) are "binary". A group with no questions is left out."""
    if not rows:
        raise ValueError("no GQA rows to score")
    groups: dict[str, list[bool]] = {"accuracy": [], "open": [], "binary": []}
    for prediction, answer, structural in rows:
        if structural not in ("query", "verify", "logical", "choose", "compare"):
            raise ValueError(f"unknown GQA structural type {structural!r}")
        right = gqa_match(prediction, answer)
        groups["accuracy"].append(right)
        groups["open" if structural == "query" else "binary"].append(right)
    return {k: sum(v) / len(v) for k, v in groups.items() if v}
