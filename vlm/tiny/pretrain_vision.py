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
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from transformers import AutoImageProcessor, AutoModel, PreTrainedModel

from vlm.processing import image_processor_from
from vlm.shapes.cells import CellBatches, CellHeads
from vlm.train.fit import FitConfig, fit, loss_summary


@dataclass(frozen=True)
class PretrainConfig(FitConfig):
    min_pixels: int = 8  # a cell is background unless an object covers this many of its pixels
    eval_images: int = 128


def grid_features(model: PreTrainedModel, pixel_values: torch.Tensor) -> torch.Tensor:
    """(n, cells, channels) from the last layer: a conv map flattened, or a ViT's patch tokens
    (prefix tokens such as CLS and registers come first and are dropped)."""
    hidden = model(pixel_values=pixel_values).last_hidden_state
    if hidden.dim() == 4:
        return hidden.flatten(2).transpose(1, 2)
    side = pixel_values.shape[-1] // model.config.patch_size
    return hidden[:, -side * side :]


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
    head = CellHeads(channels)
    model.train()
    train = CellBatches(processor, "train", size, side, config.min_pixels)

    def loss_at(step: int) -> torch.Tensor:
        pixels, targets = train.get(step * config.batch_size, config.batch_size)
        return head.loss(grid_features(model, pixels), targets)

    losses = fit(list(model.parameters()) + list(head.parameters()), loss_at, config,
                 f"self-training {Path(source).name} (once per cache)")
    model.eval()
    pixels, targets = CellBatches(processor, "val", size, side, config.min_pixels).get(0, config.eval_images)
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
