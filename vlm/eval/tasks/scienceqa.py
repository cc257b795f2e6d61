"""ScienceQA-IMG: the 2,017 test questions that have an image, scored as LLaVA's ``eval_science_qa.py``
(`choice_letter` rule "scienceqa"), per subject.

Released files: ``problems.json`` (``{pid: {question, choices, answer (index), hint, image, subject,
split, ...}}``) and ``pid_splits.json`` (``{"test": [pid, ...], ...}``) with images
``test/<pid>/image.png`` (also ``images/test/...``). Sample ids are the pids (LLaVA's question ids). Or
lmms-eval's parquet (lmms-lab ScienceQA, ScienceQA-IMG: ``question``, ``choices``, ``answer``, ``hint``,
``image``), which has no pid column: ids are row numbers there.

Prompt (LLaVA-1.5's ``llava_test_CQM-A.json``, lmms-eval's default too): ``Context: {hint}\\n`` when the
hint is not empty, the question, ``A. ...`` lines, then the letter instruction. lmms-eval scores a reply
right when it equals the letter case-insensitively or starts with "X." (so a bare "B." counts); LLaVA
needs "X. " with a space, or "The answer is X.". We follow LLaVA.
"""

from __future__ import annotations

from pathlib import Path

from vlm.eval.files import find_one, image_cell, is_parquet, read_json, read_parquet, require
from vlm.eval.metrics.choice import choice_letter
from vlm.eval.task import TASKS, ImageRef, Sample
from vlm.eval.tasks.choice import ChoiceTask, letter_of

IMAGE_ROOTS = ("test", "images/test")


def sqa_question(question: str, hint: str | None) -> str:
    return f"Context: {hint}\n{question}" if hint and hint.strip() else question


@TASKS.register("scienceqa_img")
class ScienceQAImg(ChoiceTask):
    group_by = "subject"
    description = "ScienceQA-IMG test: accuracy (LLaVA's letter rules), per subject"

    def pick(self, sample: Sample, reply: str) -> str | None:
        return choice_letter(reply, len(sample.options), rule="scienceqa")

    def read(self, data: Path) -> list[Sample]:
        data = Path(data)
        if is_parquet(data):
            return [self._from_parquet(row, i) for i, row in enumerate(read_parquet(data))]
        problems_path = find_one(data, ["problems.json"], "ScienceQA problems")
        folder = problems_path.parent
        splits = read_json(find_one(folder, ["pid_splits.json"], "ScienceQA splits"))
        if "test" not in splits:
            raise ValueError(f"ScienceQA: pid_splits.json has no 'test' split (has {sorted(splits)})")
        problems = read_json(problems_path)
        root = next((folder / r for r in IMAGE_ROOTS if (folder / r).is_dir()), folder)
        samples = []
        for pid in splits["test"]:
            if str(pid) not in problems:
                raise ValueError(f"ScienceQA: test pid {pid} is not in {problems_path.name}")
            p = problems[str(pid)]
            require(p, ("question", "choices", "answer", "image"), f"ScienceQA problem {pid}")
            if not p["image"]:
                continue
            image = image_cell(f"{pid}/{p['image']}", root)
            samples.append(self._sample(str(pid), p, image))
        return samples

    def _from_parquet(self, row: dict, i: int) -> Sample:
        require(row, ("question", "choices", "answer", "image"), f"ScienceQA parquet row {i}")
        return self._sample(str(i), row, image_cell(row["image"]))

    @staticmethod
    def _sample(pid: str, p: dict, image: ImageRef) -> Sample:
        options = [str(c) for c in p["choices"]]
        answer = letter_of(int(p["answer"]), len(options), f"ScienceQA {pid}")
        meta = {"subject": p.get("subject"), "grade": p.get("grade")}
        return Sample(pid, sqa_question(p["question"], p.get("hint")), [image], answer, options, meta)
