"""The accelerate side: one `Accelerator` per run, per-stage engine settings, and the final save.

DeepSpeed configs may say ``"auto"`` for batch sizes, accumulation, clipping and precision; the
pristine config is kept and re-filled from each stage's settings before that stage's `prepare`.
"""

from __future__ import annotations

import copy
import os
import shutil
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import (
    DistributedType,
    GradientAccumulationPlugin,
    InitProcessGroupKwargs,
    ProjectConfiguration,
)

from vlm.processing import VLMProcessor
from vlm.train.config import RunConfig, StageConfig

_PRISTINE = "_vlm_pristine_ds_config"


def make_accelerator(run: RunConfig, run_dir: Path) -> Accelerator:
    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
        torch.set_num_threads(cpu_threads(run))
    tracker = None if run.tracker == "none" else run.tracker
    accelerator = Accelerator(
        mixed_precision=run.mixed_precision,
        log_with=tracker,
        project_config=ProjectConfiguration(project_dir=str(run_dir), logging_dir=str(run_dir / "logs")),
        gradient_accumulation_plugin=GradientAccumulationPlugin(num_steps=1, sync_with_dataloader=False),
        kwargs_handlers=_process_group(),
    )
    plugin = accelerator.state.deepspeed_plugin
    if plugin is not None:
        setattr(accelerator, _PRISTINE, copy.deepcopy(plugin.deepspeed_config))
    return accelerator


def cpu_threads(run: RunConfig) -> int:
    """Torch threads per process on CPU: ``run.cpu_threads``, else the cores this process may use shared
    by the processes on this machine (``accelerate launch`` pins every process to 1 thread, which would
    leave all but one core idle in a single-process run)."""
    if run.cpu_threads > 0:
        return run.cpu_threads
    local = int(os.environ.get("LOCAL_WORLD_SIZE") or os.environ.get("WORLD_SIZE") or 1)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // local)


def _process_group() -> list:
    """On CPU, launched processes need gloo named explicitly (accelerate + DeepSpeed otherwise see one process)."""
    launched = int(os.environ.get("WORLD_SIZE", "1")) > 1 or os.environ.get("ACCELERATE_USE_DEEPSPEED") == "true"
    return [InitProcessGroupKwargs(backend="gloo")] if launched and not torch.cuda.is_available() else []


def configure_engine(accelerator: Accelerator, stage: StageConfig) -> None:
    """Accumulation and, under DeepSpeed, the stage's clipping and ZeRO-3 weight gathering."""
    accelerator.gradient_accumulation_steps = stage.grad_accum
    plugin = accelerator.state.deepspeed_plugin
    if plugin is None:
        return
    config = plugin.deepspeed_config
    config.clear()
    config.update(copy.deepcopy(getattr(accelerator, _PRISTINE)))
    config["gradient_accumulation_steps"] = stage.grad_accum
    if config.get("gradient_clipping", "auto") == "auto":
        config["gradient_clipping"] = stage.optim.max_grad_norm
    if config.get("zero_optimization", {}).get("stage") == 3:
        # the final from_pretrained folder needs the full weights gathered from every rank
        config["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] = True


def save_final_model(
    accelerator: Accelerator, model, stage, source: Path, processor: VLMProcessor, out: Path
) -> None:
    """Gather the trained weights (any engine), let the stage finish them (merge LoRA) and save a
    `from_pretrained` folder atomically."""
    accelerator.wait_for_everyone()
    state = accelerator.get_state_dict(model)  # full weights on the main process, also under ZeRO-3
    if accelerator.is_main_process:
        with no_zero_init(accelerator):
            write_stage_result(stage, source, state, processor, out)
    accelerator.wait_for_everyone()


def write_stage_result(stage, source: Path, state: dict, processor: VLMProcessor, out: Path) -> Path:
    """The stage's starting model with its trained tensors from ``state`` (frozen ones are the
    start's; this also works from a 4-bit QLoRA model), finished (LoRA merged), saved atomically."""
    fresh = stage.prepare(stage.load(source, for_training=False))
    trained = {n for n, p in fresh.named_parameters() if p.requires_grad}
    missing = sorted(trained - set(state))
    if missing:
        raise ValueError(f"the trained weights lack tensors the stage trains, e.g. {missing[:3]}")
    fresh.load_state_dict({k: v for k, v in state.items() if k in trained}, strict=False)
    return save_folder(stage.finish(fresh), processor, out)


def save_folder(model, processor: VLMProcessor, out: Path) -> Path:
    """Model + processor as a `from_pretrained` folder, written aside and renamed into place."""
    tmp = out.with_name(f".tmp-{out.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    processor.save_pretrained(tmp)
    os.replace(tmp, out)
    return out


class no_zero_init:
    """Load a plain (unpartitioned) copy even while a ZeRO-3 run has zero.Init enabled. Without an
    accelerator it always applies (saving and restoring transformers' reference is harmless)."""

    def __init__(self, accelerator: Accelerator | None = None):
        self.active = accelerator is None or accelerator.distributed_type == DistributedType.DEEPSPEED

    def __enter__(self):
        if self.active:
            from transformers.integrations import deepspeed as hf_ds

            self.saved = hf_ds._hf_deepspeed_config_weak_ref
            hf_ds._hf_deepspeed_config_weak_ref = None

    def __exit__(self, *exc):
        if self.active:
            from transformers.integrations import deepspeed as hf_ds

            hf_ds._hf_deepspeed_config_weak_ref = self.saved
