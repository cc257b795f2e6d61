"""A plain loop for auxiliary objectives (self-training, probes): AdamW, warmup then cosine, clipping at 1.

Stages train through `vlm.train.loop`; this is for the small objectives around them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm


@dataclass(frozen=True)
class FitConfig:
    steps: int = 600
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 0.01
    warmup: int = 20
    seed: int = 0


def fit(
    params: list[nn.Parameter], loss_at: Callable[[int], torch.Tensor], config: FitConfig, desc: str
) -> list[float]:
    """``config.steps`` steps of ``loss_at(step)``; returns the losses. ``desc`` labels the progress bar."""
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / config.warmup) * 0.5 * (1 + math.cos(math.pi * s / config.steps))
    )
    losses = []
    for step in tqdm(range(config.steps), desc=desc, leave=False):
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
