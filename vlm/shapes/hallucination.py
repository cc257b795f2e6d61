"""Hallucination probes on held-out shapes-world scenes, as eval tasks (next to ``synthetic_pope``).

``synthetic_pope_auc``: the ``synthetic_pope`` questions scored without decoding: per split, the ROC
AUC of ``logit(yes) - logit(no)`` at the answer's first token between present and absent objects.
Accuracy, F1 and yes-ratio mix the model's yes/no bias with whether it tells present from absent;
the AUC is the second alone (0.5: the answer does not depend on what is in the image).
``synthetic_chair``: greedy captions; every "<colour> <shape>" they mention is checked against the
scene (CHAIR_i = hallucinated mentions / mentions, CHAIR_s = captions with any, recall = objects named).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vlm.cache import cache_root, cached_folder
from vlm.eval.generate import first_token_margins
from vlm.eval.metrics.auc import roc_auc
from vlm.eval.metrics.pope import POPE_SPLITS
from vlm.eval.task import TASKS, ImageRef, ModelProbe, Sample, Scores, Task
from vlm.shapes.benchmarks import IMAGE_SIZE, SyntheticPOPE
from vlm.shapes.world import COLOURS, SHAPES, SyntheticWorld

CAPTION_PROMPT = "Describe the image briefly."
CHAIR_VERSION = 1
_MENTION = re.compile(rf"\b({'|'.join(COLOURS)}) ({'|'.join(SHAPES)})")


@TASKS.register("synthetic_pope_auc")
class SyntheticPopeAUC(SyntheticPOPE, ModelProbe):
    headline = "auc"
    description = "shapes-world POPE questions: ROC AUC of logit(yes) - logit(no), present vs absent, per split"

    def measure(self, model: Any, processor: Any, samples: Sequence[Sample], batch_size: int) -> Scores:
        prompts = [([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": s.question}]}],
                    [ref.load(s.id) for ref in s.images]) for s in samples]
        margins = first_token_margins(model, processor, prompts, "yes", "no", batch_size)
        breakdown = {}
        for split in POPE_SPLITS:
            rows = [(m, s.answer) for m, s in zip(margins, samples, strict=True) if s.meta["split"] == split]
            if rows:
                yes, no = [m for m, a in rows if a == "yes"], [m for m, a in rows if a == "no"]
                breakdown[split] = {"n": len(rows), "auc": roc_auc(yes, no) if yes and no else float("nan")}
        mean = sum(row["auc"] for row in breakdown.values()) / max(len(breakdown), 1)
        return Scores({"auc": mean}, {"auc": 0.5}, breakdown)


def write_chair(out: Path, n_images: int = 100) -> None:
    """Held-out scenes as images and ``chair.json`` (per image: its objects' names)."""
    world = SyntheticWorld("test", IMAGE_SIZE)
    (out / "images").mkdir()
    rows = []
    for i in range(n_images):
        world.image(i).save(out / world.image_path(i))
        rows.append({"id": str(i), "image": world.image_path(i), "objects": [o.name for o in world.scene(i).objects]})
    (out / "chair.json").write_text(json.dumps(rows, indent=1))


@TASKS.register("synthetic_chair")
class SyntheticChair(Task):
    kind = "as_is"
    headline = "chair_i"
    max_new_tokens = 48
    description = "shapes-world captions: CHAIR_i / CHAIR_s (hallucinated objects) and recall of the objects"

    def read(self, data: Path) -> list[Sample]:
        rows = json.loads((Path(data) / "chair.json").read_text())
        return [Sample(r["id"], CAPTION_PROMPT, [ImageRef(r["image"], Path(data))], r["objects"]) for r in rows]

    def default_data(self) -> Path:
        return cached_folder(cache_root() / "eval" / f"synthetic_chair-v{CHAIR_VERSION}", write_chair)

    def score(self, samples: Sequence[Sample], predictions: Sequence[str]) -> Scores:
        mentions = hallucinated = bad = named = objects = 0
        for sample, caption in zip(samples, predictions, strict=True):
            present = set(sample.answer)
            said = {" ".join(m) for m in _MENTION.findall(caption.lower())}
            mentions, hallucinated = mentions + len(said), hallucinated + len(said - present)
            bad += bool(said - present)
            named, objects = named + len(said & present), objects + len(present)
        metrics = {"chair_i": hallucinated / max(mentions, 1), "chair_s": bad / max(len(samples), 1),
                   "recall": named / max(objects, 1)}
        return Scores(metrics | {"mentions": mentions}, breakdown={"all": {"n": len(samples), **metrics}})
