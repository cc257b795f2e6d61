"""MMBench (dev, EN or CN) with CircularEval, VLMEvalKit's rule-based letter extraction, no GPT judge.

Read from the released TSV (``index``, ``question``, ``hint``, ``A``..``D``, ``answer``, ``category``,
``l2-category``, ``split``, ``image`` = base64) or lmms-eval's parquet (lmms-lab MMBench, same columns,
``L2-category``). The released dev TSVs already hold the circular copies: rotation k of question i is the
row ``index = i + k * 1_000_000`` with the options shifted left by k (A B C D -> B C D A -> ...) and the
answer letter moved with its option. VLMEvalKit and lmms-eval score them by grouping ``index % 1e6``
(a question counts only if all its rows are right); we do the same with `circular_accuracy`. A file
without copies (no index >= 1e6) gets them built here the same way (LLaVA's ``--all-rounds`` rotates
``options[1:] + options[:1]`` per round), so every question is asked once per rotation.

Prompt: LLaVA's ``model_vqa_mmbench``: ``{hint}\\n{question}`` (hint only when present), ``A. ...``
lines (options stop at the first empty one), then the letter instruction. lmms-eval joins hint,
question and a "There are several options:" block with spaces. VLMEvalKit falls back to a GPT judge
when no rule reads a letter; here such replies are wrong. Sample ids are the TSV's ``index`` values,
as in LLaVA's answer files.
"""

from __future__ import annotations

import csv
import string
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from vlm.eval.files import find_one, image_cell, is_parquet, read_parquet, require
from vlm.eval.metrics.choice import circular_accuracy, mmbench_letter
from vlm.eval.task import TASKS, Sample, Scores, Task, best_constant, check_lengths

ROTATION = 1_000_000
OPTION_COLUMNS = "ABCDE"


# cells pandas' read_csv turns into NaN (its default na_values), as the reference code reads the TSV
PANDAS_NA = frozenset(
    "#N/A,#N/A N/A,#NA,-1.#IND,-1.#QNAN,-NaN,-nan,1.#IND,1.#QNAN,<NA>,N/A,NA,NULL,NaN,None,n/a,nan,null".split(
        ","
    )
)


def missing(value: object) -> bool:
    """An empty cell: None, NaN, blank, or a string pandas reads as NaN ("nan", "None", "NA", ...)."""
    return value is None or value != value or str(value).strip() in PANDAS_NA | {""}


def read_table(data: Path, what: str) -> list[dict]:
    """Rows of an OpenCompass/VLMEvalKit TSV (image references resolved) or of lmms-eval's parquet."""
    data = Path(data)
    if is_parquet(data):
        return read_parquet(data)
    path = find_one(data, ["*.tsv"], f"{what} TSV")
    csv.field_size_limit(sys.maxsize)  # base64 images
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    # VLMEvalKit's TSVs store a repeated image once: other rows hold that row's index (<= 64 characters)
    images = {row.get("index"): row.get("image") for row in rows}
    for row in rows:
        image = row.get("image")
        if image is not None and len(image) <= 64 and len(images.get(image) or "") > 64:
            row["image"] = images[image]
    return rows


def row_options(row: dict) -> list[str]:
    """Option texts A, B, ... up to the first missing one (LLaVA's ``get_options``)."""
    options = []
    for letter in OPTION_COLUMNS:
        if letter not in row or missing(row[letter]):
            break
        options.append(str(row[letter]))
    return options


def lettered(options: Sequence[str]) -> dict[str, str]:
    """``{"A": first option, "B": ...}``, as `mmbench_letter` takes them."""
    return dict(zip(string.ascii_uppercase[: len(options)], options, strict=True))


@TASKS.register("mmbench")
class MMBench(Task):
    kind = "choice"
    headline = "circular"
    max_new_tokens = 8
    description = "MMBench dev: CircularEval accuracy (rule-based letters, no GPT judge), per category"

    def read(self, data: Path) -> list[Sample]:
        rows = read_table(data, "MMBench")
        samples = []
        for n, row in enumerate(rows):
            require(row, ("index", "question", "A", "B", "image"), f"MMBench row {n}")
            options = row_options(row)
            question = str(row["question"])
            if not missing(row.get("hint")):
                question = f"{row['hint']}\n{question}"
            answer = None if missing(row.get("answer")) else str(row["answer"]).strip()
            meta = {
                "index": int(row["index"]),
                "category": row.get("category"),
                "l2_category": row.get("l2-category", row.get("L2-category")),
            }
            samples.append(
                Sample(str(meta["index"]), question, [image_cell(row["image"])], answer, options, meta)
            )
        if samples and all(s.meta["index"] < ROTATION for s in samples):
            samples = [r for s in samples for r in rotations(s)]
        return samples

    def score(self, samples: Sequence[Sample], predictions: Sequence[str]) -> Scores:
        check_lengths(samples, predictions)
        unanswered = [s.id for s in samples if s.answer is None]
        if unanswered:
            raise ValueError(f"MMBench rows without answers (test split?): {unanswered[:5]}")

        def letters(replies: Sequence[str]) -> list[str | None]:
            return [mmbench_letter(r, lettered(s.options)) for s, r in zip(samples, replies, strict=True)]

        def metrics(picked: Sequence[str | None], idx: Sequence[int]) -> dict[str, float]:
            rows = [(samples[i].meta["index"], picked[i], samples[i].answer) for i in idx]
            first = [i for i in idx if samples[i].meta["index"] < ROTATION]
            vanilla = sum(picked[i] == samples[i].answer for i in first) / max(len(first), 1)
            return {"circular": circular_accuracy(rows), "vanilla": vanilla}

        everything = range(len(samples))
        picked = letters(predictions)
        groups: dict[str, list[int]] = defaultdict(list)
        for i, s in enumerate(samples):
            groups[str(s.meta["category"])].append(i)
        breakdown = {
            name: {"n": sum(samples[i].meta["index"] < ROTATION for i in idx), **metrics(picked, idx)}
            for name, idx in sorted(groups.items())
        }
        chance = best_constant(
            list("ABCD"), lambda r: metrics(letters([r] * len(samples)), everything), "circular"
        )
        return Scores(metrics(picked, everything), chance, breakdown)


def rotations(sample: Sample) -> list[Sample]:
    """The question once per rotation of its options: rotation k shifts them left by k and has index
    ``index + k * 1_000_000``; the answer letter follows its option."""
    n = len(sample.options)
    out = []
    for k in range(n):
        index = sample.meta["index"] + k * ROTATION
        answer = sample.answer
        if answer is not None:
            answer = string.ascii_uppercase[(string.ascii_uppercase.index(answer) - k) % n]
        options = sample.options[k:] + sample.options[:k]
        meta = {**sample.meta, "index": index}
        out.append(Sample(str(index), sample.question, sample.images, answer, options, meta))
    return out
