"""AI2D test (3,088 questions): VLMEvalKit's rule-based letter extraction (`mmbench_letter`), accuracy.

Read from lmms-eval's parquet (lmms-lab ai2d: ``question``, ``options`` (list), ``answer`` = the 0-based
index of the right option, ``image``; no id column, so ids are row numbers) or VLMEvalKit's
``AI2D_TEST.tsv`` (``index``, ``question``, ``A``..``D``, ``answer`` letter, base64 ``image``; ids are
``index``). Prompt: the question, ``A. ...`` lines and the letter instruction (lmms-eval's "mcq" format).

lmms-eval reads a letter only when the reply starts with "X." and otherwise compares the whole reply
with the letter (case and punctuation ignored); VLMEvalKit finds exactly one option letter among the
words, or else exactly one option text, then asks a GPT judge; we use its rules without the judge.
"""

from __future__ import annotations

from pathlib import Path

from vlm.eval.files import image_cell, require
from vlm.eval.metrics.choice import mmbench_letter
from vlm.eval.task import TASKS, Sample
from vlm.eval.tasks.choice import ChoiceTask, letter_of
from vlm.eval.tasks.mmbench import lettered, missing, read_table, row_options


@TASKS.register("ai2d")
class AI2D(ChoiceTask):
    description = "AI2D test: accuracy (VLMEvalKit's letter rules, no GPT judge)"

    def pick(self, sample: Sample, reply: str) -> str | None:
        return mmbench_letter(reply, lettered(sample.options))

    def read(self, data: Path) -> list[Sample]:
        samples = []
        for i, row in enumerate(read_table(Path(data), "AI2D")):
            if "options" in row:  # lmms-eval parquet
                require(row, ("question", "options", "answer", "image"), f"AI2D parquet row {i}")
                options = [str(o) for o in row["options"]]
                answer = letter_of(int(row["answer"]), len(options), f"AI2D row {i}")
                sid = str(row.get("id", i))
            else:  # VLMEvalKit TSV
                require(row, ("index", "question", "A", "B", "answer", "image"), f"AI2D TSV row {i}")
                options = row_options(row)
                answer = None if missing(row["answer"]) else str(row["answer"]).strip()
                sid = str(row["index"])
            samples.append(Sample(sid, str(row["question"]), [image_cell(row["image"])], answer, options))
        return samples
