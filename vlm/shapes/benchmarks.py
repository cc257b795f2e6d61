"""The synthetic suite: VQA-, POPE- and RefCOCO-style benchmarks from held-out scenes of the shapes
world (split ``test``, never trained on), written once in the real benchmarks' file formats (VQAv2's
official JSON, lmms-eval's POPE and RefCOCO parquet) and read by the same readers.

Questions keep the world's own wording (the instruction is part of the question, as in training),
so every prompt style asks them as they are.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from vlm.cache import cache_root, cached_folder
from vlm.eval.task import TASKS, Sample
from vlm.eval.tasks.pope import POPE
from vlm.eval.tasks.refcoco import RefCOCO
from vlm.eval.tasks.vqav2 import VQAv2
from vlm.shapes.world import SyntheticWorld

VERSION = 3
IMAGE_SIZE = 256  # the size the embedded default recipe trains at
ANSWER_TYPES = {"existence": "yes/no", "count": "number"}


def _png(world: SyntheticWorld, index: int) -> bytes:
    buffer = io.BytesIO()
    world.image(index).save(buffer, format="PNG")
    return buffer.getvalue()


def _cached(name: str, write) -> Path:
    """``VLM_CACHE/eval/NAME-vVERSION``, written atomically on first use."""
    return cached_folder(cache_root() / "eval" / f"{name}-v{VERSION}", write)


def write_vqa(out: Path, n_images: int = 200) -> None:
    """VQAv2's official layout; each question's 10 human answers are its one ground truth."""
    world = SyntheticWorld("test", IMAGE_SIZE)
    (out / "test").mkdir()
    questions, annotations = [], []
    for i in range(n_images):
        (out / "test" / f"COCO_test_{i:012d}.png").write_bytes(_png(world, i))
        for k, rec in enumerate(world.records(i, "vqa")):
            qid = i * 100 + k
            text = rec["conversations"][0]["value"].replace("<image>", "").strip()
            questions.append({"image_id": i, "question": text, "question_id": qid})
            answers = [
                {"answer": rec["answer"], "answer_confidence": "yes", "answer_id": j + 1} for j in range(10)
            ]
            annotations.append(
                {
                    "question_id": qid,
                    "image_id": i,
                    "question_type": rec["type"],
                    "answer_type": ANSWER_TYPES.get(rec["type"], "other"),
                    "multiple_choice_answer": rec["answer"],
                    "answers": answers,
                }
            )
    (out / "v2_OpenEnded_mscoco_test_questions.json").write_text(
        json.dumps({"data_subtype": "test", "questions": questions})
    )
    (out / "v2_mscoco_test_annotations.json").write_text(json.dumps({"annotations": annotations}))


def _write_parquet(rows: list[dict], path: Path) -> None:
    """As the hub's parquet files are: the ``image`` column typed as a `datasets.Image` feature."""
    import datasets

    datasets.Dataset.from_list(rows).cast_column("image", datasets.Image()).to_parquet(str(path))


def write_pope(out: Path, n_images: int = 150) -> None:
    """lmms-eval's POPE parquet layout: per image and split one present and one absent object."""
    world = SyntheticWorld("test", IMAGE_SIZE)
    rows = []
    for i in range(n_images):
        image = {"bytes": _png(world, i), "path": world.image_path(i)}
        for rec in world.records(i, "pope"):
            question = rec["conversations"][0]["value"].replace("<image>", "").strip()
            rows.append(
                {
                    "id": rec["id"],
                    "question_id": str(len(rows)),
                    "question": question,
                    "answer": rec["answer"],
                    "image_source": world.image_path(i),
                    "image": image,
                    "category": rec["category"],
                }
            )
    _write_parquet(rows, out / "test-00000-of-00001.parquet")


def write_ref(out: Path, n_images: int = 200) -> None:
    """lmms-eval's RefCOCO parquet layout: COCO ``[x, y, w, h]`` pixel boxes, expressions in ``answer``."""
    world = SyntheticWorld("test", IMAGE_SIZE)
    rows = []
    for i in range(n_images):
        (rec,) = world.records(i, "ground")
        x1, y1, x2, y2 = (v * IMAGE_SIZE for v in rec["box"])
        rows.append(
            {
                "question_id": str(i),
                "image": {"bytes": _png(world, i), "path": world.image_path(i)},
                "answer": [rec["object"]],
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "file_name": world.image_path(i),
            }
        )
    _write_parquet(rows, out / "val-00000-of-00001.parquet")


@TASKS.register("synthetic_vqa")
class SyntheticVQA(VQAv2):
    kind = "as_is"
    group_by = "question_type"
    chance_by = "question_type"
    max_new_tokens = 8
    description = "shapes-world VQA (held-out scenes), VQAv2 format; per question type"

    def default_data(self) -> Path:
        return _cached("synthetic_vqa", write_vqa)


@TASKS.register("synthetic_pope")
class SyntheticPOPE(POPE):
    kind = "as_is"
    description = "shapes-world POPE (held-out scenes), lmms-eval POPE parquet; mean F1 over splits"

    def default_data(self) -> Path:
        return _cached("synthetic_pope", write_pope)


@TASKS.register("synthetic_ref")
class SyntheticRef(RefCOCO):
    description = "shapes-world referring boxes (held-out scenes), lmms-eval RefCOCO parquet; Acc@0.5"

    def prompt(self, sample: Sample, style: str) -> str:
        return f"Give the bounding box of the {sample.question}."  # the world's grounding wording

    def default_data(self) -> Path:
        return _cached("synthetic_ref", write_ref)
