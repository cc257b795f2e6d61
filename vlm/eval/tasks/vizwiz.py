"""VizWiz-VQA val: VQA accuracy (EvalAI normalisation, as lmms-eval scores val), per answer type.

Released files: ``val.json`` (a list of ``{image, question, answers: [{answer, answer_confidence}],
answerable, answer_type}``) with images ``val/<image>``; or lmms-eval's parquet (lmms-lab VizWiz-VQA:
``question_id``, ``question``, ``answers``, ``image``, ``category``). Sample ids are the image names
without extension (one question per image), which is lmms-eval's ``question_id``.

LLaVA-1.5 (50.0, test-dev via the server) asks ``{question}\\nWhen the provided information is
insufficient, respond with 'Unanswerable'.\\nAnswer the question using a single word or phrase.``;
lmms-eval's default post-prompt is the same (it also capitalises the question). The server uses the
official VQA processor; we score val with EvalAI's, as lmms-eval does. ``answer_confidence`` does not
enter the metric (it does nowhere). Chance: one constant reply for all questions (``chance_by = None``).
"""

from __future__ import annotations

from pathlib import Path

from vlm.eval.files import find_one, image_cell, is_parquet, read_json, read_parquet, require
from vlm.eval.task import TASKS, Sample
from vlm.eval.tasks.vqav2 import VQATask


@TASKS.register("vizwiz")
class VizWiz(VQATask):
    kind = "short_unanswerable"
    group_by = "answer_type"
    chance_by = None  # no question types; answer types would leak the answers
    description = "VizWiz-VQA val: VQA accuracy (EvalAI normalisation), per answer type"

    def read(self, data: Path) -> list[Sample]:
        data = Path(data)
        if is_parquet(data):
            return [self._from_parquet(row, i) for i, row in enumerate(read_parquet(data))]
        path = find_one(data, ["val.json", "*val*.json"], "VizWiz annotations")
        folder = path.parent
        root = folder / "val" if (folder / "val").is_dir() else folder
        rows = read_json(path)
        if not isinstance(rows, list):
            raise ValueError(f"{path}: expected a list of questions (VizWiz's val.json)")
        samples = []
        for n, row in enumerate(rows):
            require(row, ("image", "question", "answers"), f"{path.name} item {n}")
            answers = [a["answer"] if isinstance(a, dict) else a for a in row["answers"]]
            meta = {"answer_type": row.get("answer_type"), "answerable": row.get("answerable")}
            samples.append(
                Sample(
                    Path(row["image"]).stem,
                    row["question"],
                    [image_cell(row["image"], root)],
                    answers,
                    meta=meta,
                )
            )
        return samples

    def _from_parquet(self, row: dict, i: int) -> Sample:
        require(row, ("question_id", "question", "answers", "image"), f"VizWiz parquet row {i}")
        answers = [a["answer"] if isinstance(a, dict) else a for a in row["answers"]]
        meta = {"answer_type": row.get("answer_type", row.get("category"))}
        return Sample(
            str(row["question_id"]), row["question"], [image_cell(row["image"])], answers, meta=meta
        )
