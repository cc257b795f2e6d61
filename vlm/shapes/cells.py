"""Per-cell ground truth of shapes-world scenes, for dense objectives and probes on an encoder's token grid.

`cell_targets` says, for each cell of a grid laid over a rendered scene, which object covers it and
where that object is; `CellBatches` renders scenes with their targets; `CellHeads` are linear heads
that read those targets off per-cell features (self-training uses them as an auxiliary objective, the
patch probe to measure what an encoder's tokens carry).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from vlm.shapes.world import COLOURS, PAIRS, SHAPES, Scene, SyntheticWorld


def cell_targets(scene: Scene, size: int, side: int, min_pixels: int) -> tuple[np.ndarray, np.ndarray]:
    """Per grid cell (row-major, ``side * side`` cells) of a ``size``-pixel rendering:

    - classes ``(cells, 3)``: the colour and the shape of the object covering most of the cell (0 when
      none covers ``min_pixels``), and the shape of the object whose centre lies in the cell (0 when none);
    - boxes ``(cells, 4)``: the covering object's box in image coordinates (x1, y1, x2, y2 in [0, 1]),
      zeros where no object covers the cell.

    The box is absolute on purpose: a convolution cannot tell where it is, and spatial questions and
    grounding need every token to carry where its object is (a ViT gets that from position embeddings).
    """
    labels = np.asarray(scene.label_map(size))  # 0 = background, k = PAIRS[k - 1]
    rows, cols = np.indices(labels.shape) * side // size
    index = (rows * side + cols) * (len(PAIRS) + 1) + labels
    counts = np.bincount(index.ravel(), minlength=side * side * (len(PAIRS) + 1))
    objects = counts.reshape(side * side, len(PAIRS) + 1)[:, 1:]
    dominant = np.where(objects.max(1) >= min_pixels, objects.argmax(1), -1)
    by_pair = {PAIRS.index((o.colour, o.shape)): o for o in scene.objects}
    classes = np.zeros((side * side, 3), dtype=np.int64)
    boxes = np.zeros((side * side, 4), dtype=np.float32)
    for cell, k in enumerate(dominant):
        if k >= 0:
            colour, shape = PAIRS[k]
            classes[cell, :2] = 1 + list(COLOURS).index(colour), 1 + SHAPES.index(shape)
            boxes[cell] = by_pair[k].box
    for obj in scene.objects:
        x, y = (min(side - 1, int(v * side)) for v in obj.centre)
        classes[y * side + x, 2] = 1 + SHAPES.index(obj.shape)
    return classes, boxes


class CellBatches:
    """Rendered scenes, processed pixels and cell targets for consecutive scene indices of one split."""

    def __init__(self, processor, split: str, size: int, side: int, min_pixels: int):
        self.world, self.processor = SyntheticWorld(split, size), processor
        self.size, self.side, self.min_pixels = size, side, min_pixels

    def get(self, start: int, n: int) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        scenes = [self.world.scene(i) for i in range(start, start + n)]
        pixels = self.processor([s.render(self.size) for s in scenes], return_tensors="pt")["pixel_values"]
        classes, boxes = zip(*(cell_targets(s, self.size, self.side, self.min_pixels) for s in scenes), strict=True)
        return pixels, (torch.from_numpy(np.stack(classes)), torch.from_numpy(np.stack(boxes)))


class CellHeads(nn.Module):
    """Linear heads over each cell's features (colour, covering shape, centred shape, box); thrown away
    after pretraining."""

    BOX_WEIGHT = 3.0  # L1 on [0, 1] coordinates is small next to the cross-entropies

    def __init__(self, channels: int):
        super().__init__()
        self.colour = nn.Linear(channels, len(COLOURS) + 1)
        self.shape = nn.Linear(channels, len(SHAPES) + 1)
        self.centre = nn.Linear(channels, len(SHAPES) + 1)
        self.box = nn.Linear(channels, 4)
        self.ce = nn.CrossEntropyLoss()
        # few cells hold a centre; without down-weighting "none" the centre head learns only that
        self.centre_ce = nn.CrossEntropyLoss(weight=torch.tensor([0.1] + [1.0] * len(SHAPES)))

    def loss(self, features: torch.Tensor, targets: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        features, classes, boxes = features.flatten(0, 1), targets[0].flatten(0, 1), targets[1].flatten(0, 1)
        box = self.box_error(features, classes, boxes) if (classes[:, 0] > 0).any() else features.sum() * 0
        return (self.ce(self.colour(features), classes[:, 0]) + self.ce(self.shape(features), classes[:, 1])
                + self.centre_ce(self.centre(features), classes[:, 2]) + self.BOX_WEIGHT * box)

    def box_error(self, features: torch.Tensor, classes: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """Mean L1 error of the predicted box over the cells an object covers (flattened cells)."""
        covered = classes[:, 0] > 0
        return (self.box(features[covered]) - boxes[covered]).abs().mean()

    def accuracy(self, features: torch.Tensor, targets: tuple[torch.Tensor, torch.Tensor]) -> dict[str, float]:
        """On cells an object covers: is its colour right, its shape right (among the shapes), and the mean
        L1 error of its box; on cells holding an object's centre: is its shape right."""
        features, classes, boxes = features.flatten(0, 1), targets[0].flatten(0, 1), targets[1].flatten(0, 1)
        out = {}
        for name, head, column in (("colour", self.colour, 0), ("shape", self.shape, 1), ("centre_shape", self.centre, 2)):
            cells = classes[:, column] > 0
            right = head(features[cells])[:, 1:].argmax(-1) + 1 == classes[cells, column]
            out[name] = round(right.float().mean().item(), 4)
        out["box_l1"] = round(self.box_error(features, classes, boxes).item(), 4)
        return out
