"""TallyQA test (counting questions, answers 0-15): accuracy, split into simple and complex questions.

Released files: ``test.json`` (a list of ``{image, question, answer (int), issimple, question_id,
...}``) with ``image`` paths (``VG_100K/...``, ``val2014/...``) relative to the folder holding the file
(or its ``images/``). Sample ids are ``question_id`` (line numbers where a row has none).

Prismatic's harness scores TallyQA by the likelihood of the 16 options "0".."15" (``--mode
likelihood``; every sample has those ``options``). In generation the reply is EvalAI-normalised (so
"Two." reads as "2") and must then equal the count exactly. Chance: the best constant count, per group
in the breakdown.
"""

from __future__ import annotations

from pathlib import Path

from vlm.eval.files import find_one, image_cell, read_json, require
from vlm.eval.metrics.vqa import normalize_answer
from vlm.eval.task import TASKS, Sample
from vlm.eval.tasks.choice import PickTask

OPTIONS = [str(n) for n in range(16)]


@TASKS.register("tallyqa")
class TallyQA(PickTask):
    kind = "short"
    group_by = "type"
    description = "TallyQA test: counting accuracy, simple / complex"

    def pick(self, sample: Sample, reply: str) -> str | None:
        return normalize_answer(reply)

    def read(self, data: Path) -> list[Sample]:
        path = find_one(Path(data), ["test.json"], "TallyQA test")
        folder = path.parent
        root = folder / "images" if (folder / "images").is_dir() else folder
        rows = read_json(path)
        if not isinstance(rows, list):
            raise ValueError(f"{path}: expected a list of questions (TallyQA's test.json)")
        samples = []
        for n, row in enumerate(rows):
            require(row, ("image", "question", "answer", "issimple"), f"{path.name} item {n}")
            meta = {"type": "simple" if row["issimple"] else "complex"}
            sid = str(row.get("question_id", n))
            image = [image_cell(row["image"], root)]
            samples.append(Sample(sid, row["question"], image, str(int(row["answer"])), OPTIONS, meta))
        return samples
