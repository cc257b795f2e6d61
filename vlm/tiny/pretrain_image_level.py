"""Image-level self-training of a tiny ViT on the shapes world, as CLIP is trained: only the pooled (CLS)
output is asked anything (which colours and shapes occur, how many objects), never a patch token about
its patch. It gives locality alignment (MaskEmbed) an encoder worth aligning. Any vision source kind
(`vlm.train.tower.Tower`): the result is saved in the source folder's own format.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from vlm.shapes.world import COLOURS, SHAPES, SyntheticWorld
from vlm.train.fit import FitConfig, fit, loss_summary
from vlm.train.tower import Tower


def _presence(scene) -> torch.Tensor:
    target = torch.zeros(len(COLOURS) + len(SHAPES))
    for o in scene.objects:
        target[list(COLOURS).index(o.colour)] = 1
        target[len(COLOURS) + SHAPES.index(o.shape)] = 1
    return target


def _pooled(tokens: torch.Tensor, prefix: int) -> torch.Tensor:
    """The image-level token: the first prefix token (CLS), or the patch mean of a tower without one."""
    return tokens[:, 0] if prefix else tokens.mean(1)


def pretrain_image_level(source: Path, out: Path, config: FitConfig | None = None) -> dict:
    """CLIP-style global objective on the pooled (CLS) output only: which colours and shapes occur
    (multi-label) and how many objects (1-5). Nothing asks a patch token to describe its patch.
    The result is saved in the source folder's own format."""
    config = config or FitConfig()
    torch.manual_seed(config.seed)
    tower = Tower.open(source)
    model, processor, width = tower.encoder(), tower.images(), tower.width
    heads = nn.ModuleDict({"presence": nn.Linear(width, len(COLOURS) + len(SHAPES)), "count": nn.Linear(width, 5)})
    world = SyntheticWorld("train", int(tower.config.image_size))
    model.train()

    def loss_at(step: int) -> torch.Tensor:
        scenes = [world.scene(i) for i in range(step * config.batch_size, (step + 1) * config.batch_size)]
        pixels = processor([s.render(world.size) for s in scenes], return_tensors="pt")["pixel_values"]
        pooled = _pooled(model(pixels), tower.prefix)
        presence = torch.stack([_presence(s) for s in scenes])
        count = torch.tensor([len(s.objects) - 1 for s in scenes])
        return (nn.functional.binary_cross_entropy_with_logits(heads["presence"](pooled), presence)
                + nn.functional.cross_entropy(heads["count"](pooled), count))

    losses = fit(list(model.parameters()) + list(heads.parameters()), loss_at, config,
                 f"self-training {Path(source).name} image-level (once per cache)")
    report = {"objective": "image level: colours and shapes present (multi-label), object count", "config": asdict(config),
              **loss_summary(losses)}
    tower.save(model, out)
    (out / "pretrain.json").write_text(json.dumps(report, indent=1))
    return report
