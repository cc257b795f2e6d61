"""Atomic, verified, resumable checkpoints: the engine's state (model, optimizer, RNG per process;
DeepSpeed shards, FSDP's sharded `torch.distributed.checkpoint` folder) plus our own `TrainerState`,
written aside and renamed into place.

A checkpoint folder counts only once ``trainer_state.json`` is inside it, and that file is written
last, before the rename; a kill at any point leaves the previous checkpoint as the latest usable
one. ``trainer_state.json`` also lists every other file with its size and CRC-32: on resume a
truncated or corrupted file is named, the checkpoint is set aside (``checkpoint-N.unusable``) and the
previous one is used. A write that fails (a full disk, a file-size limit) removes the half-written
folder and stops with `CheckpointWriteError`; the previous checkpoints stay as they were. Only
trainable weights are stored (frozen ones come back from the stage's starting model).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from accelerate import Accelerator
from accelerate.utils import DistributedType, broadcast_object_list
from safetensors import SafetensorError

from vlm.train.observe import log

STATE_FILE = "trainer_state.json"
PREFIX = "checkpoint-"
SHARDED = "sharded"  # FSDP: the trainable weights and the optimizer, one torch.distributed.checkpoint folder
UNUSABLE = ".unusable"
_FULL = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


class CheckpointWriteError(RuntimeError):
    """A checkpoint could not be written (its half-written folder was removed)."""


class CheckpointCorruptError(RuntimeError):
    """A checkpoint's files do not match the sizes and checksums it recorded."""


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


def save_checkpoint(accelerator: Accelerator, folder: Path, state: TrainerState, keep_last: int, model, optimizer) -> Path:
    final = folder / f"{PREFIX}{state.step}"
    tmp = folder / f".tmp-{PREFIX}{state.step}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    error = None
    try:
        _save_engine_state(accelerator, tmp, model, optimizer)
    except (OSError, RuntimeError, SafetensorError) as err:  # torch.save and safetensors wrap the OS error
        error = err
    if _any_process(accelerator, error is not None):
        _give_up(accelerator, tmp, final, error or OSError("another process failed to write its part"))
    if accelerator.is_main_process:
        try:
            _write_json(tmp / STATE_FILE, asdict(state) | {"files": _manifest(tmp)})
        except OSError as err:
            error = err
    if _any_process(accelerator, error is not None):  # every process stops, not the main one alone
        _give_up(accelerator, tmp, final, error or OSError(f"the main process could not write {STATE_FILE}"))
    if accelerator.is_main_process:
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        _fsync_dir(folder)
        for old in checkpoints(folder)[: max(0, len(checkpoints(folder)) - keep_last)]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def _save_engine_state(accelerator: Accelerator, tmp: Path, model, optimizer) -> None:
    if accelerator.is_fsdp2:
        # accelerate would store the frozen weights too; DCP with ignore_frozen_params keeps the trainable ones
        import torch.distributed.checkpoint as dcp
        from accelerate.checkpointing import save_accelerator_state

        tmp.mkdir(parents=True, exist_ok=True)
        model_state, optim_state = _fsdp_state(model, optimizer)
        dcp.save({"model": model_state, "optimizer": optim_state}, checkpoint_id=str(tmp / SHARDED))
        save_accelerator_state(str(tmp), [], [], [], [], accelerator.process_index, accelerator.step, accelerator.scaler)
        return
    ds = accelerator.distributed_type == DistributedType.DEEPSPEED
    accelerator.save_state(str(tmp), **({"exclude_frozen_parameters": True} if ds else {}))


def load_checkpoint(accelerator: Accelerator, path: Path, model, optimizer) -> TrainerState:
    if accelerator.is_fsdp2:
        import torch.distributed.checkpoint as dcp
        from accelerate.checkpointing import load_accelerator_state
        from torch.distributed.checkpoint.state_dict import set_state_dict

        model_state, optim_state = _fsdp_state(model, optimizer)
        sharded = {"model": model_state, "optimizer": optim_state}
        dcp.load(sharded, checkpoint_id=str(path / SHARDED))
        set_state_dict(model, _raw(optimizer), model_state_dict=sharded["model"], optim_state_dict=sharded["optimizer"],
                       options=_fsdp_options())
        load_accelerator_state(str(path), [], [], [], [], accelerator.process_index, accelerator.scaler, "cpu")
    else:
        ds = accelerator.distributed_type == DistributedType.DEEPSPEED
        accelerator.load_state(str(path), **({"load_module_strict": False} if ds else {"strict": False}))
    data = json.loads((path / STATE_FILE).read_text())
    data.pop("files", None)
    return TrainerState(**data)


def latest_usable(accelerator: Accelerator, folder: Path) -> Path | None:
    """The newest complete checkpoint whose files match their recorded sizes and checksums. Each one that
    does not is logged with the file at fault and renamed ``checkpoint-N.unusable``; the decision is the
    main process's, shared with the others."""
    chosen = [None]
    if accelerator.is_main_process:
        for path in reversed(checkpoints(folder)):
            try:
                verify(path)
            except CheckpointCorruptError as err:
                aside = path.with_name(path.name + UNUSABLE)
                shutil.rmtree(aside, ignore_errors=True)
                os.replace(path, aside)
                log.error("%s; set aside as %s, falling back to the previous checkpoint", err, aside.name)
                continue
            chosen = [str(path)]
            break
    if accelerator.num_processes > 1:
        broadcast_object_list(chosen)
    return Path(chosen[0]) if chosen[0] else None


def verify(path: Path) -> None:
    """Raise `CheckpointCorruptError` naming the first file of ``path`` that is missing, truncated or
    corrupted (its size or CRC-32 differs from what the checkpoint recorded when it was written)."""
    try:
        recorded = json.loads((path / STATE_FILE).read_text()).get("files")
    except (OSError, ValueError) as err:
        raise CheckpointCorruptError(f"checkpoint {path}: {STATE_FILE} is unreadable ({err})") from err
    if recorded is None:  # written before checkpoints listed their files
        return
    for name, (size, crc) in sorted(recorded.items()):
        file = path / name
        if not file.is_file():
            raise CheckpointCorruptError(f"checkpoint {path}: {file} is missing")
        actual = file.stat().st_size
        if actual != size:
            raise CheckpointCorruptError(f"checkpoint {path}: {file} is truncated or overwritten ({actual:,} bytes, "
                                         f"{size:,} written)")
        if _crc32(file) != crc:
            raise CheckpointCorruptError(f"checkpoint {path}: {file} is corrupted (its checksum differs from the one "
                                         "recorded when it was written)")


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


def _fsdp_options():
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(ignore_frozen_params=True, strict=False)


def _fsdp_state(model, optimizer) -> tuple[dict, dict]:
    from torch.distributed.checkpoint.state_dict import get_state_dict

    return get_state_dict(model, _raw(optimizer), options=_fsdp_options())


def _raw(optimizer):
    """The torch optimizer under accelerate's wrapper."""
    return getattr(optimizer, "optimizer", optimizer)


def _any_process(accelerator: Accelerator, flag: bool) -> bool:
    if accelerator.num_processes == 1:
        return flag
    import torch

    return bool(accelerator.reduce(torch.tensor(float(flag), device=accelerator.device), "sum") > 0)


def _give_up(accelerator: Accelerator, tmp: Path, final: Path, err: Exception) -> None:
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    failure = _write_error(final, err, final.parent)
    log.error("%s", failure)
    raise failure from err


def _write_error(final: Path, err: Exception, folder: Path) -> CheckpointWriteError:
    previous = checkpoints(folder)
    kept = f"the previous checkpoint {previous[-1].name} is intact" if previous else "no earlier checkpoint exists"
    full = getattr(err, "errno", None) in _FULL or any(s in str(err).lower() for s in ("too large", "no space", "quota"))
    reason = "the disk is full or a file-size limit was reached" if full else "the write failed"
    return CheckpointWriteError(f"could not write checkpoint {final}: {reason} ({err}); the half-written folder was "
                                f"removed and {kept}. Free space, then continue with --resume.")


def _manifest(folder: Path) -> dict[str, list[int]]:
    return {str(p.relative_to(folder)): [p.stat().st_size, _crc32(p)] for p in sorted(folder.rglob("*")) if p.is_file()}


def _crc32(path: Path) -> int:
    crc = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            crc = zlib.crc32(chunk, crc)
    return crc


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
