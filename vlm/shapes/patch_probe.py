"""A patch-level linear probe on held-out shapes-world scenes: does each patch token say what covers its
patch (colour, shape), which shape is centred in it, and where its object is? Locality alignment
(MaskEmbed) should raise it.

`patch_probe(folder)` probes an encoder folder of any vision source kind, opened as the ``maskembed``
stage opens it (`vlm.train.tower.Tower`: last-block tokens, prefix first). The ``synthetic_patch_probe``
eval task probes a VLM's vision tower: the tokens its projector receives.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vlm.eval.task import TASKS, ImageRef, ModelProbe, Sample, Scores
from vlm.shapes.benchmarks import SyntheticVQA
from vlm.shapes.cells import CellBatches, CellHeads, cell_targets
from vlm.shapes.world import SyntheticWorld
from vlm.train.fit import FitConfig, fit
from vlm.train.tower import Tower
from vlm.vision.encoder import encoder_class

MIN_PIXELS = 8  # a cell is background unless an object covers this many of its pixels
Features = Callable[[torch.Tensor], torch.Tensor]  # pixels -> (n, side * side, channels) patch tokens


def fit_probe(features: Features, processor: Any, size: int, side: int, width: int, steps: int = 300,
              batch_size: int = 32, seed: int = 0) -> CellHeads:
    """Linear heads trained on frozen patch tokens of train scenes (at most 4096 scenes, each encoded once)."""
    torch.manual_seed(seed)
    probe = CellHeads(width)
    train = CellBatches(processor, "train", size, side, MIN_PIXELS)
    cache: dict[int, tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]] = {}

    def loss_at(step: int) -> torch.Tensor:
        start = (step * batch_size) % 4096
        if start not in cache:
            pixels, targets = train.get(start, batch_size)
            with torch.no_grad():
                cache[start] = (features(pixels), targets)
        return probe.loss(*cache[start])

    fit(list(probe.parameters()), loss_at, FitConfig(steps=steps, batch_size=batch_size, lr=3e-3, seed=seed),
        "patch probe")
    return probe


def patch_probe(encoder_dir: Path, steps: int = 300, batch_size: int = 32, eval_images: int = 256, seed: int = 0) -> dict:
    """The probe on an encoder folder's last-layer patch tokens; accuracies (and the box's mean L1 error)
    on held-out scenes."""
    tower = Tower.open(encoder_dir)
    model, processor = tower.encoder().eval().requires_grad_(False), tower.images()
    size, side = int(tower.config.image_size), tower.side

    def features(pixels: torch.Tensor) -> torch.Tensor:
        return model(pixels)[:, tower.prefix :]

    probe = fit_probe(features, processor, size, side, tower.width, steps, batch_size, seed)
    pixels, targets = CellBatches(processor, "val", size, side, MIN_PIXELS).get(0, eval_images)
    with torch.no_grad():
        return probe.accuracy(features(pixels), targets)


@TASKS.register("synthetic_patch_probe")
class SyntheticPatchProbe(ModelProbe):
    """The probe on a VLM's vision tower (after its feature selection: the projector's input), trained on
    train scenes and scored on the synthetic VQA suite's held-out images."""

    headline = "colour"
    description = "shapes-world patch probe on the vision tower's tokens: colour/shape per patch, box L1"
    steps = 300

    def read(self, data: Path) -> list[Sample]:
        images = sorted((Path(data) / "test").glob("COCO_test_*.png"))
        return [Sample(str(int(p.stem.rsplit("_", 1)[1])), "", [ImageRef(p.name, p.parent)], None) for p in images]

    def default_data(self) -> Path:
        return SyntheticVQA().default_data()

    def measure(self, model: Any, processor: Any, samples: Sequence[Sample], batch_size: int) -> Scores:
        config, tower = model.config, model.vision_tower
        prefix = encoder_class(config).num_prefix_tokens(config) if config.vision_feature_select_strategy == "full" else 0
        size = int(config.image_size)

        def features(pixels: torch.Tensor) -> torch.Tensor:
            return tower(pixels.to(model.device, model.dtype))[:, prefix:].float().cpu()

        with torch.no_grad():
            tokens, width = features(processor.image_processor([samples[0].images[0].load(samples[0].id)],
                                                                return_tensors="pt")["pixel_values"]).shape[1:]
        side = math.isqrt(tokens)
        if side * side != tokens:
            raise ValueError(f"the patch probe needs a square token grid; the vision tower gives {tokens} tokens")
        probe = fit_probe(features, processor.image_processor, size, side, width, self.steps)
        world = SyntheticWorld("test", size)
        pixels = processor.image_processor([s.images[0].load(s.id) for s in samples], return_tensors="pt")["pixel_values"]
        classes, boxes = zip(*(cell_targets(world.scene(int(s.id)), size, side, MIN_PIXELS) for s in samples), strict=True)
        targets = (torch.from_numpy(np.stack(classes)), torch.from_numpy(np.stack(boxes)))
        with torch.no_grad():
            scores = probe.accuracy(features(pixels), targets)
        return Scores(scores, breakdown={"patches": {"n": len(samples), **scores}})
