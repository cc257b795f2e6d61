"""Multiple choice: option-letter parsing (ScienceQA-IMG, SEED-Bench, AI2D, MMBench) and MMBench CircularEval.

Letters are rule-based only; the GPT judge that MMBench's toolkit falls back to is not used, so a
reply no rule can read is wrong.
"""

from __future__ import annotations

import re
import string
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

Rule = Literal["scienceqa", "exact"]

_THE_ANSWER_IS = re.compile(r"The answer is ([A-Z]).")  # '.' is any character, as in the reference
_MMBENCH_SEPARATORS = ".()[],:;!*#{}"
_MMBENCH_REFUSALS = (
    "Sorry, I can't help with images of people yet.",
    "I can't process this file.",
    "I'm sorry, but without the image provided",
    "Cannot determine the answer",
)


def _letters(n_options: int) -> str:
    if not isinstance(n_options, int) or not 1 <= n_options <= 26:
        raise ValueError(f"n_options must be an int in 1..26, got {n_options!r}")
    return string.ascii_uppercase[:n_options]


def choice_letter(text: str, n_options: int, rule: Rule = "scienceqa") -> str | None:
    """The option letter a reply picks, or None (scored wrong). The reply is stripped first, as LLaVA's
    generation strips it.

    ``"scienceqa"`` - LLaVA's ``eval_science_qa.py``, tried in order: the whole reply is a letter; it
    starts with a letter, '.' and a space ("B. cat" - a bare "B." is *not* read); the text holds
    exactly one "The answer is X" followed by any character. The first rule that fires decides, and a
    letter beyond the options is wrong (no fall-through).
    ``"exact"`` - LLaVA's SEED-Bench scoring: the reply must be exactly the letter.
    """
    letters = _letters(n_options)
    if not isinstance(text, str):
        raise ValueError(f"replies must be strings, got {type(text).__name__}")
    reply = text.strip()
    if rule == "exact":
        return reply if len(reply) == 1 and reply in letters else None
    if rule != "scienceqa":
        raise ValueError(f"unknown letter rule {rule!r}; use 'scienceqa' or 'exact'")
    if len(reply) == 1 and reply in string.ascii_uppercase:
        letter = reply
    elif len(reply) >= 3 and reply[0] in string.ascii_uppercase and reply[1:3] == ". ":
        letter = reply[0]
    else:
        found = _THE_ANSWER_IS.findall(reply)
        letter = found[0] if len(found) == 1 else None
    return letter if letter is not None and letter in letters else None


def mmbench_letter(text: str, options: Mapping[str, str]) -> str | None:
    """VLMEvalKit's rule-based ``can_infer`` (MMBench, SEED and AI2D in VLMEvalKit), without the judge.

    1. Letter: replace each of ``.()[],:;!*#{}`` by a space and split on whitespace; if exactly one
       option letter is among the words, that is the answer. A known refusal phrase, or no letter but
       a word "Z", means "none of these" (returned as None: always wrong).
    2. Otherwise text: if exactly one option's text occurs (case-insensitively) in the reply, its letter.
    ``options`` maps letters to option texts, e.g. ``{"A": "cat", "B": "dog"}``.
    """
    if not options:
        raise ValueError("MMBench needs at least one option")
    for letter, option in options.items():
        if len(letter) != 1 or letter not in string.ascii_uppercase:
            raise ValueError(f"option keys must be single capital letters, got {letter!r}")
        if not str(option).strip():
            raise ValueError(f"option {letter} has empty text, which every reply would contain")
    reply = str(text)
    if any(refusal in reply for refusal in _MMBENCH_REFUSALS):
        return None
    words = reply
    for char in _MMBENCH_SEPARATORS:
        words = words.replace(char, " ")
    split = words.split()
    named = [letter for letter in options if letter in split]
    if len(named) == 1:
        return named[0]
    if not named and "Z" in split:
        return None
    lowered = reply.lower()
    by_text = [letter for letter, option in options.items() if str(option).lower() in lowered]
    return by_text[0] if len(by_text) == 1 else None


def choice_accuracy(predicted: Sequence[str | None], answers: Sequence[str]) -> float:
    """Share of parsed letters (None = unparseable, wrong) equal to the answer letters."""
    if isinstance(predicted, str) or isinstance(answers, str):
        raise ValueError("predicted and answers must be sequences, not a single string")
    if len(predicted) != len(answers) or not answers:
        raise ValueError(
            f"need as many answers as predictions, at least one (got {len(predicted)} and {len(answers)})"
        )
    return sum(p is not None and p == a for p, a in zip(predicted, answers, strict=True)) / len(answers)


def circular_accuracy(rows: Iterable[tuple[int, str | None, str]]) -> float:
    """MMBench CircularEval (VLMEvalKit): ``(index, predicted letter or None, answer letter)`` rows, one
    per rotation of a question's options; rotations share ``index % 1_000_000``. A question counts only
    if every one of its rotations was answered right."""
    right: dict[int, bool] = defaultdict(lambda: True)
    for index, predicted, answer in rows:
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise ValueError(f"MMBench indices must be non-negative ints, got {index!r}")
        if not isinstance(answer, str) or len(answer) != 1 or answer not in string.ascii_uppercase:
            raise ValueError(
                f"MMBench answers must be single capital letters, got {answer!r} (index {index})"
            )
        question = index % 1_000_000
        right[question] = right[question] and predicted == answer
    if not right:
        raise ValueError("no MMBench rows to score")
    return sum(right.values()) / len(right)
