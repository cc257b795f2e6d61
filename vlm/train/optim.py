"""Optimizer parameter groups (a learning rate per part, weight decay on matrices only) and the schedule."""

from __future__ import annotations

import math

import torch
from torch import nn
from transformers import get_scheduler

from vlm.train.config import OptimConfig
from vlm.train.trainable import PARTS


def param_groups(model: nn.Module, optim: OptimConfig, parts: dict[str, str] = PARTS) -> list[dict]:
    """One group per (part, decay), ``parts`` naming each part's attribute of ``model``; a part's learning
    rate is ``optim.lr_<part>`` where set, else ``optim.lr``. Biases, norms and other 1-D parameters never decay."""
    groups = []
    for part, attr in parts.items():
        lr = getattr(optim, f"lr_{part}", None)
        lr = optim.lr if lr is None else lr
        params = [(n, p) for n, p in getattr(model, attr).named_parameters() if p.requires_grad]
        decay = [p for n, p in params if p.ndim >= 2 and "norm" not in n.lower()]
        no_decay = [p for n, p in params if not (p.ndim >= 2 and "norm" not in n.lower())]
        for tensors, wd, tag in ((decay, optim.weight_decay, "decay"), (no_decay, 0.0, "no_decay")):
            if tensors:
                groups.append({"params": tensors, "lr": lr, "weight_decay": wd, "name": f"{part}/{tag}"})
    if not groups:
        raise ValueError("nothing trains in this stage: every part is frozen")
    return groups


def make_optimizer(model: nn.Module, optim: OptimConfig, parts: dict[str, str] = PARTS) -> torch.optim.Optimizer:
    return torch.optim.AdamW(param_groups(model, optim, parts), betas=tuple(optim.betas), eps=optim.eps)


def make_scheduler(optimizer: torch.optim.Optimizer, optim: OptimConfig, total_steps: int):
    warmup = math.ceil(optim.warmup_ratio * total_steps)
    return get_scheduler(
        optim.schedule, optimizer, num_warmup_steps=warmup, num_training_steps=total_steps
    )
