"""RefCOCO / RefCOCO+ / RefCOCOg referring-expression grounding: Acc@0.5 of the predicted box against
the ground truth converted to the model's frame (LLaVA-1.5: the padded square).

Read from lmms-eval's parquet layout (lmms-lab RefCOCO: ``question_id``, ``image``, ``answer`` = the
referring expressions, ``bbox`` = COCO ``[x, y, w, h]`` pixels); one sample per expression, as lmms-eval
explodes them. The released ``refs(unc).p`` is a pickle, which we do not load (pickles run code).
lmms-eval normalises boxes by the raw image size; we score in the padded-square frame LLaVA-1.5
was trained in (``pad_to_square``); for square images the two agree.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from vlm.data.images import resolve_in_root
from vlm.eval.files import image_cell, read_parquet, require
from vlm.eval.metrics.grounding import coco_box_to_normalised, grounding_accuracy, iou, parse_box
from vlm.eval.task import TASKS, ImageRef, Sample, Scores, Task, check_lengths

N_CANDIDATES = 200  # ground-truth boxes tried as the constant reply for chance


class RefCOCO(Task):
    kind = "ground"
    headline = "acc@0.5"
    max_new_tokens = 32
    pad_to_square = True
    description = "RefCOCO: Acc@0.5 (IoU >= 0.5), padded-square frame"

    def read(self, data: Path) -> list[Sample]:
        samples = []
        for i, row in enumerate(read_parquet(Path(data))):
            require(row, ("question_id", "image", "answer", "bbox"), f"{type(self).__name__} parquet row {i}")
            expressions = [row["answer"]] if isinstance(row["answer"], str) else list(row["answer"])
            image = image_cell(row["image"])
            for j, expression in enumerate(expressions):
                sid = f"{row['question_id']}" if len(expressions) == 1 else f"{row['question_id']}_{j}"
                samples.append(Sample(sid, expression, [image], list(row["bbox"])))
        return samples

    def targets(self, samples: Sequence[Sample]) -> list[list[float]]:
        """Ground-truth boxes as ``[x1, y1, x2, y2]`` in [0, 1] of the model's frame."""
        sizes: dict[int, tuple[int, int]] = {}
        out = []
        for s in samples:
            ref = s.images[0]
            if id(ref) not in sizes:
                sizes[id(ref)] = _size(ref)
            w, h = sizes[id(ref)]
            out.append(list(coco_box_to_normalised(s.answer, w, h, pad_to_square=self.pad_to_square)))
        return out

    def score(self, samples: Sequence[Sample], predictions: Sequence[str]) -> Scores:
        check_lengths(samples, predictions)
        targets = self.targets(samples)
        parsed = [parse_box(p) for p in predictions]
        ious = [
            iou(b, t) if b is not None and b[2] >= b[0] and b[3] >= b[1] else 0.0
            for b, t in zip(parsed, targets, strict=True)
        ]
        metrics = {"acc@0.5": grounding_accuracy(predictions, targets), "mean_iou": sum(ious) / len(ious)}
        best = 0.0
        for candidate in targets[:N_CANDIDATES]:
            best = max(best, sum(iou(candidate, t) >= 0.5 for t in targets) / len(targets))
        parsed_share = sum(b is not None for b in parsed) / len(parsed)
        return Scores(metrics, {"acc@0.5": best}, {"all": {"n": len(samples), "parsed": parsed_share}})


def _size(ref: ImageRef) -> tuple[int, int]:
    """Width and height from the header only."""
    source = io.BytesIO(ref.data) if ref.data is not None else resolve_in_root(ref.path, ref.root, ref.path)
    with Image.open(source) as image:
        return image.size


@TASKS.register("refcoco")
class RefCOCOTask(RefCOCO):
    pass


@TASKS.register("refcoco+")
class RefCOCOPlus(RefCOCO):
    description = "RefCOCO+: Acc@0.5, padded-square frame"


@TASKS.register("refcocog")
class RefCOCOg(RefCOCO):
    description = "RefCOCOg: Acc@0.5, padded-square frame"
