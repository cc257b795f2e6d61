"""Self-training a tiny vision encoder on the shapes world, so an embedded default starts from an
encoder that has seen images (as a real recipe starts from CLIP) instead of from noise.

The objective is dense: through linear heads that are thrown away afterwards, each cell of the
encoder's output grid predicts the colour of the object covering it and the shape of the object
centred in it (or none): two cross-entropies, as in centre-based detection.
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


def cell_targets(scene: Scene, size: int, side: int, min_pixels: int) -> np.ndarray:
    """(side*side, 2) class indices per grid cell: the colour of the object covering most of the cell
    (0 when none covers ``min_pixels``), and the shape of the object whose centre lies in the cell
    (0 when none does). Shape is asked only at centres: a cell seeing a corner cannot tell it."""
    labels = np.asarray(scene.label_map(size))  # 0 = background, k = PAIRS[k - 1]
    rows, cols = np.indices(labels.shape) * side // size
    index = (rows * side + cols) * (len(PAIRS) + 1) + labels
    counts = np.bincount(index.ravel(), minlength=side * side * (len(PAIRS) + 1))
    objects = counts.reshape(side * side, len(PAIRS) + 1)[:, 1:]
    dominant = np.where(objects.max(1) >= min_pixels, objects.argmax(1), -1)
    colour = np.array([0 if k < 0 else 1 + list(COLOURS).index(PAIRS[k][0]) for k in dominant])
    shape = np.zeros(side * side, dtype=np.int64)
    for obj in scene.objects:
        x, y = (min(side - 1, int(v * side)) for v in obj.centre)
        shape[y * side + x] = 1 + SHAPES.index(obj.shape)
    return np.stack([colour, shape], axis=1)


class _Batches:
    """Rendered scenes, processed pixels and cell targets for consecutive scene indices of one split."""

    def __init__(self, processor, split: str, size: int, side: int, min_pixels: int):
        self.world, self.processor = SyntheticWorld(split, size), processor
        self.size, self.side, self.min_pixels = size, side, min_pixels

    def get(self, start: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        scenes = [self.world.scene(i) for i in range(start, start + n)]
        pixels = self.processor([s.render(self.size) for s in scenes], return_tensors="pt")["pixel_values"]
        targets = [cell_targets(s, self.size, self.side, self.min_pixels) for s in scenes]
        return pixels, torch.from_numpy(np.stack(targets))


class _Probe(nn.Module):
    """Colour and shape heads over each cell's features; thrown away after pretraining."""

    def __init__(self, channels: int):
        super().__init__()
        self.colour = nn.Linear(channels, len(COLOURS) + 1)
        self.shape = nn.Linear(channels, len(SHAPES) + 1)
        self.ce = nn.CrossEntropyLoss()
        # few cells hold a centre; without down-weighting "none" the shape head learns only that
        self.shape_ce = nn.CrossEntropyLoss(weight=torch.tensor([0.1] + [1.0] * len(SHAPES)))

    def loss(self, features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        features, targets = features.flatten(0, 1), targets.flatten(0, 1)
        return self.ce(self.colour(features), targets[:, 0]) + self.shape_ce(self.shape(features), targets[:, 1])

    def accuracy(self, features: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        """On cells an object covers, is its colour right; on cells holding an object's centre, is its
        shape (among the shapes) right."""
        features, targets = features.flatten(0, 1), targets.flatten(0, 1)
        out = {}
        for name, head, column in (("colour", self.colour, 0), ("shape", self.shape, 1)):
            cells = targets[:, column] > 0
            right = head(features[cells])[:, 1:].argmax(-1) + 1 == targets[cells, column]
            out[name] = round(right.float().mean().item(), 4)
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
        "objective": "per grid cell: colour of the covering object, shape of the centred object",
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
