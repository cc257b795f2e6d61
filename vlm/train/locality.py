"""Around locality alignment: an image-level pretraining of a tiny CLIP-style ViT (so there is
something to align), and the two measurements of `recipes/locality_alignment.py`: a patch-level
linear probe of an encoder on held-out synthetic scenes (the VLMs are measured by `vlm eval`:
synthetic_vqa and synthetic_ref). Encoders are folders of any vision source kind, opened and saved
as the ``maskembed`` stage does (`vlm.train.maskembed.Tower`): last-block tokens, prefix first.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from vlm.data.synthetic import COLOURS, SHAPES, SyntheticWorld
from vlm.tiny_pretrain import PretrainConfig, _Batches, _Probe, fit, loss_summary
from vlm.train.maskembed import Tower


def _presence(scene) -> torch.Tensor:
    target = torch.zeros(len(COLOURS) + len(SHAPES))
    for o in scene.objects:
        target[list(COLOURS).index(o.colour)] = 1
        target[len(COLOURS) + SHAPES.index(o.shape)] = 1
    return target


def _pooled(tokens: torch.Tensor, prefix: int) -> torch.Tensor:
    """The image-level token: the first prefix token (CLS), or the patch mean of a tower without one."""
    return tokens[:, 0] if prefix else tokens.mean(1)


def pretrain_image_level(source: Path, out: Path, config: PretrainConfig | None = None) -> dict:
    """CLIP-style global objective on the pooled (CLS) output only: which colours and shapes occur
    (multi-label) and how many objects (1-5). Nothing asks a patch token to describe its patch.
    The result is saved in the source folder's own format."""
    config = config or PretrainConfig()
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

    losses = fit(list(model.parameters()) + list(heads.parameters()), loss_at, config, Path(source).name + " image-level")
    report = {"objective": "image level: colours and shapes present (multi-label), object count", "config": asdict(config),
              **loss_summary(losses)}
    tower.save(model, out)
    (out / "pretrain.json").write_text(json.dumps(report, indent=1))
    return report


def patch_probe(encoder_dir: Path, steps: int = 300, batch_size: int = 32, eval_images: int = 256, seed: int = 0) -> dict:
    """A linear probe on the frozen encoder's last-layer patch tokens: each patch's colour and shape (of
    the object covering it), the shape of the object centred in it, and the covering object's box;
    accuracies (and the box's mean L1 error) on held-out scenes."""
    torch.manual_seed(seed)
    tower = Tower.open(encoder_dir)
    model, processor = tower.encoder().eval().requires_grad_(False), tower.images()
    size, side = int(tower.config.image_size), tower.side
    probe = _Probe(tower.width)
    cfg = PretrainConfig(steps=steps, batch_size=batch_size, lr=3e-3, seed=seed)
    train = _Batches(processor, "train", size, side, cfg.min_pixels)
    cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def patches(pixels: torch.Tensor) -> torch.Tensor:
        return model(pixels)[:, tower.prefix :]

    def loss_at(step: int) -> torch.Tensor:
        start = (step * batch_size) % 4096
        if start not in cache:
            pixels, targets = train.get(start, batch_size)
            with torch.no_grad():
                cache[start] = (patches(pixels), targets)
        return probe.loss(*cache[start])

    fit(list(probe.parameters()), loss_at, cfg, "patch probe")
    pixels, targets = _Batches(processor, "val", size, side, cfg.min_pixels).get(0, eval_images)
    with torch.no_grad():
        return probe.accuracy(patches(pixels), targets)
