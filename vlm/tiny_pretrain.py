"""Self-training a tiny vision encoder on the shapes world, so an embedded default starts from an
encoder that has seen images (as a real recipe starts from CLIP) instead of from noise.

The objective is dense, detection-like: through linear heads that are thrown away afterwards, each
cell of the encoder's output grid predicts the colour and the shape of the object covering it, the
shape of the object centred in it (or none), and the covering object's box in image coordinates.
The result is an ordinary Hugging Face folder (the same config, weights and image processor files
as the randomly initialised input), plus ``pretrain.json`` with the losses and a held-out probe score.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import AutoImageProcessor, AutoModel, PreTrainedModel

from vlm.data.synthetic import COLOURS, PAIRS, SHAPES, Scene, SyntheticWorld
from vlm.processing import image_processor_from


@dataclass(frozen=True)
class PretrainConfig:
    steps: int = 600
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 0.01
    warmup: int = 20
    min_pixels: int = 8  # a cell is background unless an object covers this many of its pixels
    eval_images: int = 128
    seed: int = 0


def grid_features(model: PreTrainedModel, pixel_values: torch.Tensor) -> torch.Tensor:
    """(n, cells, channels) from the last layer: a conv map flattened, or a ViT's patch tokens
    (prefix tokens such as CLS and registers come first and are dropped)."""
    hidden = model(pixel_values=pixel_values).last_hidden_state
    if hidden.dim() == 4:
        return hidden.flatten(2).transpose(1, 2)
    side = pixel_values.shape[-1] // model.config.patch_size
    return hidden[:, -side * side :]


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


class _Batches:
    """Rendered scenes, processed pixels and cell targets for consecutive scene indices of one split."""

    def __init__(self, processor, split: str, size: int, side: int, min_pixels: int):
        self.world, self.processor = SyntheticWorld(split, size), processor
        self.size, self.side, self.min_pixels = size, side, min_pixels

    def get(self, start: int, n: int) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        scenes = [self.world.scene(i) for i in range(start, start + n)]
        pixels = self.processor([s.render(self.size) for s in scenes], return_tensors="pt")["pixel_values"]
        classes, boxes = zip(*(cell_targets(s, self.size, self.side, self.min_pixels) for s in scenes), strict=True)
        return pixels, (torch.from_numpy(np.stack(classes)), torch.from_numpy(np.stack(boxes)))


class _Probe(nn.Module):
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


def fit(
    params: list[nn.Parameter], loss_at: Callable[[int], torch.Tensor], config: PretrainConfig, desc: str
) -> list[float]:
    """AdamW, linear warmup then cosine decay, clipping at 1: the loop every self-training objective uses."""
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / config.warmup) * 0.5 * (1 + math.cos(math.pi * s / config.steps))
    )
    losses = []
    for step in tqdm(range(config.steps), desc=f"self-training {desc} (once per cache)", leave=False):
        loss = loss_at(step)
        loss.backward()
        nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return losses


def loss_summary(losses: list[float]) -> dict[str, float]:
    return {"first_loss": round(float(np.mean(losses[:10])), 4), "last_loss": round(float(np.mean(losses[-10:])), 4)}


def pretrain_patch_labels(source: Path, out: Path, config: PretrainConfig = PretrainConfig()) -> dict:
    """Train the encoder in ``source`` on dense (colour, shape) labels; save it to ``out``."""
    torch.manual_seed(config.seed)
    model = AutoModel.from_pretrained(source)
    size = int(model.config.image_size)
    processor = image_processor_from(str(source), size)  # the pixels a VLM built on it will see
    probe = torch.zeros(1, 3, size, size)
    with torch.no_grad():
        cells, channels = grid_features(model, probe).shape[1:]
    side = math.isqrt(cells)
    head = _Probe(channels)
    model.train()
    train = _Batches(processor, "train", size, side, config.min_pixels)

    def loss_at(step: int) -> torch.Tensor:
        pixels, targets = train.get(step * config.batch_size, config.batch_size)
        return head.loss(grid_features(model, pixels), targets)

    losses = fit(list(model.parameters()) + list(head.parameters()), loss_at, config, Path(source).name)
    model.eval()
    pixels, targets = _Batches(processor, "val", size, side, config.min_pixels).get(0, config.eval_images)
    with torch.no_grad():
        features = grid_features(model, pixels)
        val_loss, accuracy = head.loss(features, targets).item(), head.accuracy(features, targets)
    report = {
        "objective": "per grid cell: colour, shape and box of the covering object, shape of the centred object",
        "config": asdict(config),
        "grid": [side, side],
        **loss_summary(losses),
        "val_loss": round(val_loss, 4),
        "val_accuracy": accuracy,
    }
    model.save_pretrained(out)
    AutoImageProcessor.from_pretrained(source).save_pretrained(out)
    (out / "pretrain.json").write_text(json.dumps(report, indent=1))
    return report
