"""TextVQA val (5,000 questions): VQA accuracy with the EvalAI normalisation (LLaVA's ``m4c_evaluator``).

Released files: ``TextVQA_0.5.1_val.json`` (``{"data": [{question_id, question, image_id, answers}]}``)
with images ``train_images/<image_id>.jpg`` (val images ship in the train folder). OCR tokens come from
the row's ``ocr_tokens`` or, when the row has none, from ``TextVQA_Rosetta_OCR_v0.2_val.json`` beside it
(``{"data": [{image_id, ocr_tokens}]}``). lmms-eval's parquet (lmms-lab textvqa: ``question_id``,
``question``, ``image``, ``answers``, ``ocr_tokens``) is read too.

LLaVA-1.5's 58.2 asks ``{question}\\nReference OCR token: {tokens joined by ", "}`` (then the short-answer
instruction), so the OCR line is part of ``Sample.question`` whenever a question has OCR tokens; without
it scores drop ~10 points. lmms-eval's default leaves it out (``ocr: false``) and capitalises questions.
"""

from __future__ import annotations

from pathlib import Path

from vlm.eval.files import find_one, image_cell, is_parquet, read_json, read_parquet, require
from vlm.eval.task import TASKS, Sample
from vlm.eval.tasks.vqav2 import VQATask

OCR_FILES = ("TextVQA_Rosetta_OCR_v0.2_val.json", "*Rosetta_OCR*val*.json")


def with_ocr(question: str, tokens: list[str] | None) -> str:
    """LLaVA's TextVQA question: the OCR line is added when there are tokens."""
    return f"{question}\nReference OCR token: {', '.join(tokens)}" if tokens else question


@TASKS.register("textvqa")
class TextVQA(VQATask):
    group_by = "all"
    chance_by = None
    description = "TextVQA val: VQA accuracy (EvalAI normalisation), with LLaVA's reference OCR tokens"

    def read(self, data: Path) -> list[Sample]:
        data = Path(data)
        if is_parquet(data):
            return [self._from_parquet(row, i) for i, row in enumerate(read_parquet(data))]
        path = find_one(data, ["TextVQA_0.5.1_val.json", "TextVQA_0.5*_val.json"], "TextVQA questions")
        folder = path.parent
        root = folder / "train_images" if (folder / "train_images").is_dir() else folder
        ocr = self._ocr(folder, exclude=path)
        doc = read_json(path)
        require(doc, ("data",), path.name)
        samples = []
        for q in doc["data"]:
            require(q, ("question_id", "question", "image_id", "answers"), f"{path.name} question")
            tokens = q.get("ocr_tokens")
            tokens = ocr.get(q["image_id"]) if tokens is None else tokens
            samples.append(
                Sample(
                    str(q["question_id"]),
                    with_ocr(q["question"], tokens),
                    [image_cell(f"{q['image_id']}.jpg", root)],
                    list(q["answers"]),
                    meta={"image_id": q["image_id"]},
                )
            )
        return samples

    @staticmethod
    def _ocr(folder: Path, exclude: Path) -> dict[str, list[str]]:
        for pattern in OCR_FILES:
            for path in sorted(folder.glob(pattern)):
                if path != exclude:
                    rows = read_json(path)["data"]
                    return {r["image_id"]: list(r.get("ocr_tokens") or []) for r in rows}
        return {}

    def _from_parquet(self, row: dict, i: int) -> Sample:
        require(row, ("question_id", "question", "answers", "image"), f"TextVQA parquet row {i}")
        tokens = row.get("ocr_tokens")
        return Sample(
            str(row["question_id"]),
            with_ocr(row["question"], list(tokens) if tokens is not None else None),
            [image_cell(row["image"])],
            list(row["answers"]),
            meta={"image_id": row.get("image_id")},
        )
