"""Atomic, resumable checkpoints: accelerate's state (model, optimizer, RNG per process, DeepSpeed
shards) plus our own `TrainerState`, written aside and renamed into place.

A checkpoint folder counts only once ``trainer_state.json`` is inside it, and that file is written
last, before the rename; a kill at any point leaves the previous checkpoint as the latest usable
one. Only trainable weights are stored (frozen ones come back from the stage's starting model).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from accelerate import Accelerator
from accelerate.utils import DistributedType

STATE_FILE = "trainer_state.json"
PREFIX = "checkpoint-"


@dataclass
class TrainerState:
    step: int = 0  # optimizer steps done
    epoch: int = 0
    step_in_epoch: int = 0  # optimizer steps done within ``epoch``
    scheduler: dict = field(default_factory=dict)
    bad_samples: dict = field(default_factory=dict)
    window: list = field(default_factory=list)  # step metrics since the last log line


def checkpoints(folder: Path) -> list[Path]:
    """Completed checkpoints, oldest first."""
    found = [p for p in folder.glob(f"{PREFIX}*") if (p / STATE_FILE).is_file() and p.name[len(PREFIX):].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX):]))


def save_checkpoint(accelerator: Accelerator, folder: Path, state: TrainerState, keep_last: int) -> Path:
    final = folder / f"{PREFIX}{state.step}"
    tmp = folder / f".tmp-{PREFIX}{state.step}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    ds = accelerator.distributed_type == DistributedType.DEEPSPEED
    accelerator.save_state(str(tmp), **({"exclude_frozen_parameters": True} if ds else {}))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        _write_json(tmp / STATE_FILE, asdict(state))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        _fsync_dir(folder)
        for old in checkpoints(folder)[: max(0, len(checkpoints(folder)) - keep_last)]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator: Accelerator, path: Path) -> TrainerState:
    ds = accelerator.distributed_type == DistributedType.DEEPSPEED
    accelerator.load_state(str(path), **({"load_module_strict": False} if ds else {"strict": False}))
    return TrainerState(**json.loads((path / STATE_FILE).read_text()))


def store_trainable_only(accelerator: Accelerator):
    """Checkpoints keep trainable weights only; returns the hook handle (remove it when the stage ends)."""

    def hook(models, weights, output_dir) -> None:
        for i, (model, state) in enumerate(zip(models, weights, strict=False)):
            keep = {name for name, p in model.named_parameters() if p.requires_grad}
            weights[i] = {k: v for k, v in state.items() if k in keep}

    return accelerator.register_save_state_pre_hook(hook)


def clean_partial(accelerator: Accelerator, folder: Path) -> None:
    """Remove half-written checkpoints a killed run left behind."""
    if accelerator.is_main_process:
        for tmp in folder.glob(f".tmp-{PREFIX}*"):
            shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()


def _write_json(path: Path, data: dict) -> None:
    with open(path, "w") as f:
        json.dump(data, f, indent=1)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
