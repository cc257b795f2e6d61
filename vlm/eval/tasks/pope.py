"""POPE (random / popular / adversarial), scored per split from the predictions and averaged as LLaVA
reports it (headline: mean F1)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from vlm.eval.files import find_one, image_cell, is_parquet, read_jsonl, read_parquet, require
from vlm.eval.metrics.pope import POPE_SPLITS, pope_report
from vlm.eval.task import TASKS, Sample, Scores, Task, best_constant, check_lengths

IMAGE_FOLDERS = ("val2014", "images")


@TASKS.register("pope")
class POPE(Task):
    """Official files ``coco_pope_<split>.json`` (JSON lines: question_id, image, text, label) in a
    folder whose images are in ``val2014/`` or ``images/`` (or beside them); or lmms-eval's parquet
    (lmms-lab/POPE: question_id, question, answer, category, image)."""

    kind = "short"
    headline = "f1"
    max_new_tokens = 8
    description = "POPE: accuracy/precision/recall/F1/yes-ratio per split, mean over splits (LLaVA)"

    def read(self, data: Path) -> list[Sample]:
        data = Path(data)
        if is_parquet(data):
            return [self._from_parquet(row, i) for i, row in enumerate(read_parquet(data))]
        root = next((data / d for d in IMAGE_FOLDERS if (data / d).is_dir()), data)
        samples = []
        for split in POPE_SPLITS:
            path = find_one(data, [f"*pope_{split}.json", f"*pope_{split}.jsonl"], f"POPE {split}")
            for row in read_jsonl(path):
                require(row, ("question_id", "image", "text", "label"), f"{path.name}")
                samples.append(
                    Sample(
                        f"{split}_{row['question_id']}",
                        row["text"],
                        [image_cell(row["image"], root)],
                        row["label"],
                        meta={"split": split},
                    )
                )
        return samples

    def _from_parquet(self, row: dict, i: int) -> Sample:
        require(row, ("question_id", "question", "answer", "category", "image"), f"POPE parquet row {i}")
        return Sample(
            f"{row['category']}_{row['question_id']}",
            row["question"],
            [image_cell(row["image"])],
            row["answer"],
            meta={"split": row["category"]},
        )

    def score(self, samples: Sequence[Sample], predictions: Sequence[str]) -> Scores:
        check_lengths(samples, predictions)

        def report(replies: Sequence[str]) -> dict:
            return pope_report((s.meta["split"], r, s.answer) for s, r in zip(samples, replies, strict=True))

        full = report(predictions)
        chance = best_constant(["yes", "no"], lambda r: report([r] * len(samples))["mean"], self.headline)
        breakdown = {split: {"n": m["tp"] + m["fp"] + m["tn"] + m["fn"], **m} for split, m in full.items()}
        headline = ("accuracy", "precision", "recall", "f1", "yes_ratio")
        return Scores({k: full["mean"][k] for k in headline}, {k: chance[k] for k in headline}, breakdown)
