"""VQAv2 (and the base of every 10-human-answer VQA benchmark): VQA accuracy with the EvalAI
normalisation (LLaVA's and lmms-eval's), reported overall and per answer type."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from vlm.eval.files import find_one, image_cell, is_parquet, read_json, read_parquet, require
from vlm.eval.metrics.vqa import normalize_answer, vqa_accuracy
from vlm.eval.task import TASKS, Sample, Scores, Task, check_lengths

N_CANDIDATES = 20  # most frequent answers tried as the constant reply for chance


class VQATask(Task):
    """Scores ``sample.answer`` (the human answers) with `vqa_accuracy`; ``group_by`` names the meta
    field of the breakdown. Chance is a prior: per ``chance_by`` group (a field known from the question,
    such as VQAv2's question type; None: one group) the best constant reply, scored on every sample.
    Never group chance by answer type: it is derived from the answers and would leak them."""

    group_by: ClassVar[str] = "answer_type"
    chance_by: ClassVar[str | None] = "question_type"

    def score(self, samples: Sequence[Sample], predictions: Sequence[str]) -> Scores:
        check_lengths(samples, predictions)
        acc = [vqa_accuracy(p, s.answer) for s, p in zip(samples, predictions, strict=True)]
        prior = [0.0] * len(samples)
        for idx in _groups(samples, self.chance_by).values():
            reply = best_constant_reply([samples[i].answer for i in idx])
            for i in idx:
                prior[i] = vqa_accuracy(reply, samples[i].answer)
        breakdown = {
            name: {"n": len(idx), "accuracy": _mean(acc, idx), "chance": _mean(prior, idx)}
            for name, idx in sorted(_groups(samples, self.group_by).items())
        }
        everything = range(len(samples))
        return Scores({"accuracy": _mean(acc, everything)}, {"accuracy": _mean(prior, everything)}, breakdown)


def _groups(samples: Sequence[Sample], field: str | None) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = defaultdict(list)
    for i, sample in enumerate(samples):
        groups[str(sample.meta.get(field, "all")) if field else "all"].append(i)
    return groups


def _mean(values: Sequence[float], idx: Sequence[int]) -> float:
    return sum(values[i] for i in idx) / len(idx)


def best_constant_reply(answer_lists: Sequence[Sequence[str]]) -> str:
    """The reply, among the most frequent human answers, with the highest mean VQA accuracy."""
    counts = Counter(normalize_answer(a) for answers in answer_lists for a in answers)
    candidates = [reply for reply, _ in counts.most_common(N_CANDIDATES)]
    return max(candidates, key=lambda r: sum(vqa_accuracy(r, a) for a in answer_lists))


@TASKS.register("vqav2")
class VQAv2(VQATask):
    """Official files: ``v2_OpenEnded_mscoco_<split>_questions.json`` + ``v2_mscoco_<split>_annotations.json``
    with images in ``<split>/COCO_<split>_<image_id:012d>.jpg``; or lmms-eval's parquet (lmms-lab/VQAv2)."""

    description = "VQAv2: VQA accuracy (EvalAI normalisation), per answer type"

    def read(self, data: Path) -> list[Sample]:
        data = Path(data)
        if is_parquet(data):
            return [self._from_parquet(row, i) for i, row in enumerate(read_parquet(data))]
        if not data.is_dir():
            raise ValueError(
                f"VQAv2: pass the folder holding the questions and annotations files, not {data}"
            )
        questions = read_json(find_one(data, ["*questions.json"], "VQAv2 questions"))
        annotations = read_json(find_one(data, ["*annotations.json"], "VQAv2 annotations"))
        by_id = {a["question_id"]: a for a in annotations["annotations"]}
        subtype = questions.get("data_subtype", "val2014")
        samples = []
        for q in questions["questions"]:
            require(q, ("question_id", "image_id", "question"), "VQAv2 question")
            ann = by_id.get(q["question_id"])
            if ann is None:
                raise ValueError(f"VQAv2 question {q['question_id']} has no annotation")
            image = f"{subtype}/COCO_{subtype}_{q['image_id']:012d}.jpg"
            if not (data / image).exists() and (data / image).with_suffix(".png").exists():
                image = image[: -len(".jpg")] + ".png"
            samples.append(
                Sample(
                    str(q["question_id"]),
                    q["question"],
                    [image_cell(image, data)],
                    [a["answer"] for a in ann["answers"]],
                    meta={"answer_type": ann.get("answer_type"), "question_type": ann.get("question_type")},
                )
            )
        return samples

    def _from_parquet(self, row: dict, i: int) -> Sample:
        require(row, ("question_id", "question", "answers", "image"), f"VQAv2 parquet row {i}")
        answers = [a["answer"] if isinstance(a, dict) else a for a in row["answers"]]
        meta = {"answer_type": row.get("answer_type"), "question_type": row.get("question_type")}
        return Sample(
            str(row["question_id"]), row["question"], [image_cell(row["image"])], answers, meta=meta
        )
