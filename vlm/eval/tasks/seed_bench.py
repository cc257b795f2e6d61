"""SEED-Bench, image part (questions 1-9, 14,233 in v1): LLaVA's scoring (the reply must be exactly the
answer letter), overall and per question type.

Released files: ``SEED-Bench.json`` (``{"questions": [{question_id, data_id, question, choice_a..choice_d,
answer, question_type_id, data_type}], "question_type": {name: id}}``) with images
``SEED-Bench-image/<data_id>``; or lmms-eval's parquet (lmms-lab SEED-Bench, same columns, ``image`` a
list). Only ``data_type == "image"`` questions are read. Sample ids are ``question_id`` (LLaVA's).

lmms-eval takes the first character of the reply and compares it case-insensitively, so "B. cat"
and "b" count there but not here; both report the micro average over questions, as we do.
"""

from __future__ import annotations

from pathlib import Path

from vlm.eval.files import find_one, image_cell, is_parquet, read_json, read_parquet, require
from vlm.eval.metrics.choice import choice_letter
from vlm.eval.task import TASKS, Sample
from vlm.eval.tasks.choice import ChoiceTask

FIELDS = ("question_id", "question", "choice_a", "choice_b", "choice_c", "choice_d", "answer")
TYPES = {
    1: "Scene Understanding",
    2: "Instance Identity",
    3: "Instance Attributes",
    4: "Instance Location",
    5: "Instances Counting",
    6: "Spatial Relation",
    7: "Instance Interaction",
    8: "Visual Reasoning",
    9: "Text Understanding",
}


@TASKS.register("seed_bench")
class SEEDBench(ChoiceTask):
    group_by = "question_type"
    description = "SEED-Bench image part: accuracy (exact letter, LLaVA), per question type"

    def pick(self, sample: Sample, reply: str) -> str | None:
        return choice_letter(reply, len(sample.options), rule="exact")

    def read(self, data: Path) -> list[Sample]:
        data = Path(data)
        if is_parquet(data):
            rows = read_parquet(data)
            return [
                self._sample(r, i, None) for i, r in enumerate(rows) if r.get("data_type", "image") == "image"
            ]
        path = find_one(data, ["SEED-Bench.json", "SEED-Bench*.json"], "SEED-Bench questions")
        doc = read_json(path)
        require(doc, ("questions",), path.name)
        names = {int(v): k for k, v in doc.get("question_type", {}).items()}
        folder = path.parent
        root = folder / "SEED-Bench-image" if (folder / "SEED-Bench-image").is_dir() else folder
        questions = [q for q in doc["questions"] if q.get("data_type", "image") == "image"]
        return [self._sample(q, i, root, names) for i, q in enumerate(questions)]

    @staticmethod
    def _sample(q: dict, i: int, root: Path | None, names: dict[int, str] | None = None) -> Sample:
        require(q, (*FIELDS, "question_type_id", "data_id" if root else "image"), f"SEED-Bench question {i}")
        if root is None:
            images = q["image"] if isinstance(q["image"], list) else [q["image"]]
            refs = [image_cell(image) for image in images]
        else:
            refs = [image_cell(str(q["data_id"]), root)]
        tid = int(q["question_type_id"])
        name = (names or {}).get(tid) or TYPES.get(tid, "")
        options = [str(q[f"choice_{c}"]) for c in "abcd"]
        meta = {"question_type": f"{tid} {name}".strip(), "data_id": q.get("data_id")}
        return Sample(str(q["question_id"]), q["question"], refs, str(q["answer"]).strip(), options, meta)
