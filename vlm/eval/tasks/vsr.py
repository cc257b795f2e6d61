"""VSR (Visual Spatial Reasoning), zero-shot test split (1,222 captions): is the caption true of the image?

Released files: ``test.jsonl`` of the zero-shot split (``{image, caption, label (1 true / 0 false),
relation, ...}``) with the COCO images in ``images/`` (or beside the file). Sample ids are the line
numbers (0-based): the release has no question ids.

Prismatic's harness scores VSR by the likelihood of the options ``True`` / ``False`` (``--mode
likelihood``, each sample has those ``options``). Generation asks our wording (the harnesses have no
common one): "Is the following statement about the image true or false? {caption}" plus the style's
short-answer instruction; a reply reads as True when its first word (EvalAI-normalised) is "true" or
"yes", False for "false" or "no", anything else is wrong. Breakdown per relation.
"""

from __future__ import annotations

from pathlib import Path

from vlm.eval.files import find_one, image_cell, read_jsonl, require
from vlm.eval.metrics.vqa import normalize_answer
from vlm.eval.task import TASKS, Sample
from vlm.eval.tasks.choice import PickTask

OPTIONS = ["True", "False"]
WORDS = {"true": "True", "yes": "True", "false": "False", "no": "False"}


@TASKS.register("vsr")
class VSR(PickTask):
    kind = "short"
    group_by = "relation"
    description = "VSR zero-shot test: true/false accuracy, per relation"

    def pick(self, sample: Sample, reply: str) -> str | None:
        words = normalize_answer(reply).split()
        return WORDS.get(words[0]) if words else None

    def read(self, data: Path) -> list[Sample]:
        path = find_one(Path(data), ["test.jsonl", "*test*.jsonl"], "VSR zero-shot test")
        folder = path.parent
        root = folder / "images" if (folder / "images").is_dir() else folder
        samples = []
        for n, row in enumerate(read_jsonl(path)):
            require(row, ("image", "caption", "label"), f"{path.name} line {n + 1}")
            if row["label"] not in (0, 1, True, False):
                raise ValueError(f"{path.name} line {n + 1}: label must be 0 or 1, got {row['label']!r}")
            question = f"Is the following statement about the image true or false? {row['caption']}"
            answer = OPTIONS[0] if row["label"] else OPTIONS[1]
            meta = {"relation": row.get("relation")}
            samples.append(Sample(str(n), question, [image_cell(row["image"], root)], answer, OPTIONS, meta))
        return samples
