"""MME: 14 yes/no subtasks, two questions per image; score = acc + acc+ per subtask (points), summed into
perception (10 subtasks, max 2000) and cognition (4, max 800) by `mme_scores` (the MME tool's rules).

Read from the released ``MME_Benchmark_release_version`` folder (the layout LLaVA's
``convert_answer_to_mme.py`` reads): one folder per subtask holding either ``images/`` and
``questions_answers_YN/`` or the images and their ``<image stem>.txt`` side by side; each ``.txt`` holds
``question<TAB>answer`` lines (``image<TAB>question<TAB>answer`` lines are accepted too). Or from
lmms-eval's parquet (lmms-lab MME: ``question_id`` = ``<subtask>/<image>``, ``question``, ``answer``,
``category``, ``image``).

Questions are asked as they are (kind ``as_is``): they end in "Please answer yes or no.", LLaVA's MME
prompt. lmms-eval's default replaces that with "\\nAnswer the question using a single word or phrase."
and parses replies slightly differently (see `vlm.eval.metrics.mme`); its per-subtask sums equal ours.
Sample ids are ``<subtask>/<image>#<k>``, k = 0, 1 the question's order for its image: LLaVA's answer
files repeat ``<subtask>/<image>`` for both questions, so they need these ids added before scoring.
In the breakdown acc and acc+ are percentages (score = acc + acc+).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from vlm.eval.files import image_cell, is_parquet, read_parquet, require
from vlm.eval.metrics.mme import MME_COGNITION, MME_PERCEPTION, mme_scores
from vlm.eval.task import TASKS, ImageRef, Sample, Scores, Task, best_constant, check_lengths

SUBTASKS = (*MME_PERCEPTION, *MME_COGNITION)
IMAGE_SUFFIXES = (".jpg", ".png", ".jpeg")
NESTED = ("MME_Benchmark_release_version", "MME_Benchmark")


@TASKS.register("mme")
class MME(Task):
    kind = "as_is"
    headline = "perception"
    max_new_tokens = 8
    percent = False
    description = "MME: perception / cognition points (acc + acc+ per subtask, MME tool), per subtask"

    def read(self, data: Path) -> list[Sample]:
        data = Path(data)
        if is_parquet(data):
            return self._from_parquet(data)
        if not data.is_dir():
            raise FileNotFoundError(f"MME: {data} is not a folder (pass MME_Benchmark_release_version)")
        for name in NESTED:
            if not any((data / s).is_dir() for s in SUBTASKS) and (data / name).is_dir():
                data = data / name
        found = [s for s in SUBTASKS if (data / s).is_dir()]
        if not found:
            raise FileNotFoundError(f"MME: no subtask folders ({', '.join(SUBTASKS)}) in {data}")
        return [sample for subtask in found for sample in self._subtask(data / subtask, subtask)]

    def _subtask(self, folder: Path, subtask: str) -> list[Sample]:
        split = (folder / "images").is_dir()
        image_dir = folder / "images" if split else folder
        qa_dir = folder / "questions_answers_YN" if split else folder
        images = {p.stem: p.name for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
        texts = sorted(qa_dir.glob("*.txt"))
        if not texts:
            raise FileNotFoundError(f"MME {subtask}: no question files (*.txt) in {qa_dir}")
        samples = []
        for txt in texts:
            lines = [line.rstrip("\n").split("\t") for line in txt.read_text().splitlines() if line.strip()]
            for k, fields in enumerate(lines):
                if len(fields) not in (2, 3):
                    raise ValueError(f"MME {txt}: line {k + 1} is not question<TAB>answer")
                image = fields[0] if len(fields) == 3 else images.get(txt.stem)
                if image is None:
                    raise FileNotFoundError(f"MME {txt}: no image named {txt.stem}.* in {image_dir}")
                qid = f"{subtask}/{image}"
                ref = image_cell(image, image_dir)
                samples.append(self._sample(qid, k, fields[-2], fields[-1], subtask, ref))
        return samples

    def _from_parquet(self, data: Path) -> list[Sample]:
        seen: Counter[str] = Counter()
        samples = []
        for i, row in enumerate(read_parquet(data)):
            require(row, ("question_id", "question", "answer", "category", "image"), f"MME parquet row {i}")
            qid = str(row["question_id"])
            samples.append(
                self._sample(
                    qid, seen[qid], row["question"], row["answer"], row["category"], image_cell(row["image"])
                )
            )
            seen[qid] += 1
        return samples

    @staticmethod
    def _sample(qid: str, k: int, question: str, answer: str, subtask: str, ref: ImageRef) -> Sample:
        meta = {"subtask": subtask, "image": qid}
        return Sample(f"{qid}#{k}", question.strip(), [ref], answer.strip(), meta=meta)

    def score(self, samples: Sequence[Sample], predictions: Sequence[str]) -> Scores:
        check_lengths(samples, predictions)

        def report(replies: Sequence[str]) -> dict[str, dict[str, float]]:
            rows = [
                (s.meta["subtask"], s.meta["image"], r, s.answer)
                for s, r in zip(samples, replies, strict=True)
            ]
            return mme_scores(rows)

        def totals(out: dict[str, dict[str, float]]) -> dict[str, float]:
            metrics = {c: out.get(c, {}).get("score", 0.0) for c in ("perception", "cognition")}
            return {**metrics, "total": metrics["perception"] + metrics["cognition"]}

        full = report(predictions)
        chance = best_constant(["yes", "no"], lambda r: totals(report([r] * len(samples))), "total")
        counts = Counter(s.meta["subtask"] for s in samples)
        breakdown = {
            subtask: {
                "n": counts[subtask],
                "acc": 100 * m["acc"],
                "acc_plus": 100 * m["acc_plus"],
                "score": m["score"],
                "other": m["other"],
            }
            for subtask, m in full.items()
            if subtask in counts
        }
        return Scores(totals(full), chance, breakdown)
