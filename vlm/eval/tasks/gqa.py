"""GQA balanced test-dev (12,578 questions): LLaVA's exact match, with GQA's open/binary split.

Released files: ``testdev_balanced_questions.json`` (``{qid: {imageId, question, answer, types:
{structural, ...}}}``) with images ``images/<imageId>.jpg`` (or beside the JSON). lmms-eval's layout
(lmms-lab GQA) is two parquet datasets, read from a folder holding both: ``*instructions*/`` (``id``,
``imageId``, ``question``, ``answer``, ``types``) and ``*images*/`` (``id``, ``image``); lmms-eval scores
with its generic exact_match (case and punctuation ignored), we with LLaVA's rule (`gqa_match`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

from vlm.eval.files import find_one, image_cell, read_json, read_parquet, require
from vlm.eval.metrics.vqa import gqa_scores
from vlm.eval.task import TASKS, ImageRef, Sample, Scores, Task, best_constant, check_lengths

N_CANDIDATES = 20  # most frequent answers tried as the constant reply for chance


@TASKS.register("gqa")
class GQA(Task):
    kind = "short"
    headline = "accuracy"
    max_new_tokens = 16
    description = "GQA test-dev balanced: exact match (LLaVA), open/binary and per structural type"

    def read(self, data: Path) -> list[Sample]:
        data = Path(data)
        if data.is_dir() and any(data.glob("*/*.parquet")):
            return self._from_parquet(data)
        path = find_one(data, ["testdev_balanced_questions.json", "*questions*.json"], "GQA questions")
        folder = path.parent
        root = folder / "images" if (folder / "images").is_dir() else folder
        samples = []
        for qid, q in read_json(path).items():
            require(q, ("imageId", "question", "answer", "types"), f"{path.name} question {qid}")
            image = f"{q['imageId']}.jpg"
            if not (root / image).exists() and (root / f"{q['imageId']}.png").exists():
                image = f"{q['imageId']}.png"
            samples.append(self._sample(str(qid), q, image_cell(image, root)))
        return samples

    def _from_parquet(self, data: Path) -> list[Sample]:
        questions = find_one(data, ["*instructions*"], "GQA instructions parquet folder")
        images = find_one(data, ["*images*"], "GQA images parquet folder")
        by_id = {}
        for i, row in enumerate(read_parquet(images)):
            require(row, ("id", "image"), f"GQA images parquet row {i}")
            by_id[row["id"]] = row["image"]
        samples = []
        for i, row in enumerate(read_parquet(questions)):
            require(
                row, ("id", "imageId", "question", "answer", "types"), f"GQA instructions parquet row {i}"
            )
            if row["imageId"] not in by_id:
                raise ValueError(f"GQA question {row['id']}: image {row['imageId']} not in {images}")
            samples.append(self._sample(str(row["id"]), row, image_cell(by_id[row["imageId"]])))
        return samples

    @staticmethod
    def _sample(qid: str, q: dict, image: ImageRef) -> Sample:
        structural = (q["types"] or {}).get("structural")
        return Sample(qid, q["question"], [image], q["answer"], meta={"structural": structural})

    def score(self, samples: Sequence[Sample], predictions: Sequence[str]) -> Scores:
        check_lengths(samples, predictions)
        rows = [(p, s.answer, s.meta["structural"]) for s, p in zip(samples, predictions, strict=True)]
        candidates = [a for a, _ in Counter(s.answer for s in samples).most_common(N_CANDIDATES)]

        def chance(part: list[tuple[str, str, str]]) -> dict[str, float]:
            return best_constant(
                candidates, lambda r: gqa_scores([(r, a, t) for _, a, t in part]), "accuracy"
            )

        groups: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
        for row in rows:
            groups[row[2]].append(row)
        breakdown = {
            name: {
                "n": len(part),
                "accuracy": gqa_scores(part)["accuracy"],
                "chance": chance(part)["accuracy"],
            }
            for name, part in sorted(groups.items())
        }
        return Scores(gqa_scores(rows), chance(rows), breakdown)
