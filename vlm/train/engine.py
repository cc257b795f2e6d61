"""The accelerate side: one `Accelerator` per run, per-stage engine settings, and the final save.

DeepSpeed configs may say ``"auto"`` for batch sizes, accumulation, clipping and precision; the
pristine config is kept and re-filled from each stage's settings before that stage's `prepare`.
FSDP (version 2, ``fully_shard``) wraps the units `fsdp_units` derives from each stage's model: every
decoder layer of a transformers part (its ``_no_split_modules``), every other part whole.
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
from torch import nn

from vlm.processing import VLMProcessor
from vlm.train.config import RunConfig, StageConfig

_PRISTINE = "_vlm_pristine_ds_config"


def make_accelerator(run: RunConfig, run_dir: Path) -> Accelerator:
    on_cpu = not torch.cuda.is_available()
    if on_cpu:
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
        torch.set_num_threads(cpu_threads(run))
    tracker = None if run.tracker == "none" else run.tracker
    deepspeed = os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"
    accelerator = Accelerator(
        # launched processes without CUDA are MULTI_CPU (DDP over gloo); DeepSpeed sets itself up for the CPU
        cpu=on_cpu and not deepspeed,
        mixed_precision=run.mixed_precision,
        log_with=tracker,
        project_config=ProjectConfiguration(project_dir=str(run_dir), logging_dir=str(run_dir / "logs")),
        gradient_accumulation_plugin=GradientAccumulationPlugin(num_steps=1, sync_with_dataloader=False),
        kwargs_handlers=_process_group(),
    )
    plugin = accelerator.state.deepspeed_plugin
    if plugin is not None:
        setattr(accelerator, _PRISTINE, copy.deepcopy(plugin.deepspeed_config))
    _fsdp_on_cpu(accelerator)
    if accelerator.distributed_type == DistributedType.FSDP and not accelerator.is_fsdp2:
        raise SystemExit("FSDP runs use FSDP2 (fully_shard): set fsdp_version: 2 in the accelerate config "
                         "(recipes/accelerate/fsdp.yaml) or pass --fsdp_version 2")
    return accelerator


def _fsdp_on_cpu(accelerator: Accelerator) -> None:
    """``accelerate launch --use_fsdp`` without CUDA: accelerate makes the processes MULTI_CPU (gloo) and
    drops the FSDP plugin, although FSDP2 shards over gloo on the CPU as well; switch the shared state to
    FSDP with the plugin it read from the launcher's environment."""
    if accelerator.distributed_type != DistributedType.MULTI_CPU:
        return
    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() != "true":
        return
    from accelerate.state import AcceleratorState, PartialState
    from accelerate.utils import FullyShardedDataParallelPlugin

    state = AcceleratorState()
    state.fsdp_plugin = getattr(state, "fsdp_plugin", None) or FullyShardedDataParallelPlugin()
    state.distributed_type = PartialState._shared_state["distributed_type"] = DistributedType.FSDP


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


def configure_engine(accelerator: Accelerator, stage: StageConfig, model: nn.Module, parts: dict[str, str]) -> None:
    """Accumulation; under FSDP the units to shard, under DeepSpeed the stage's clipping and ZeRO-3
    weight gathering."""
    accelerator.gradient_accumulation_steps = stage.grad_accum
    if accelerator.distributed_type == DistributedType.FSDP:
        from torch.distributed.fsdp.wrap import transformer_auto_wrap_policy

        fsdp = accelerator.state.fsdp_plugin
        fsdp.auto_wrap_policy = transformer_auto_wrap_policy
        fsdp.transformer_cls_names_to_wrap = fsdp_units(model, parts)
    plugin = accelerator.state.deepspeed_plugin
    if plugin is None:
        return
    config = plugin.deepspeed_config
    config.clear()
    config.update(copy.deepcopy(getattr(accelerator, _PRISTINE)))
    config["gradient_accumulation_steps"] = stage.grad_accum
    if config.get("gradient_clipping", "auto") == "auto":
        config["gradient_clipping"] = stage.optim.max_grad_norm
    zero = config.get("zero_optimization", {})
    hidden = _hidden_size(model)
    # accelerate sizes these from model.config.hidden_size, which a VLM's config holds in its text_config
    for key, value in (("reduce_bucket_size", hidden * hidden), ("stage3_prefetch_bucket_size", int(0.9 * hidden * hidden)),
                       ("stage3_param_persistence_threshold", 10 * hidden)):
        if zero.get(key) == "auto":
            zero[key] = value
    if zero.get("stage") == 3:
        # the final from_pretrained folder needs the full weights gathered from every rank
        zero["stage3_gather_16bit_weights_on_model_save"] = True


def _hidden_size(model: nn.Module) -> int:
    """The model's width for DeepSpeed's bucket sizes: its own config's, else its LLM's or encoder's."""
    config = getattr(model, "config", None)
    for part in (config, getattr(config, "text_config", None), getattr(config, "vision_config", None)):
        sizes = getattr(part, "hidden_sizes", None)
        size = max(sizes) if sizes else getattr(part, "hidden_size", None)
        if isinstance(size, int) and size > 0:
            return size
    return 1024


def fsdp_units(model: nn.Module, parts: dict[str, str]) -> list[str]:
    """Class names FSDP shards as units, one ``fully_shard`` each (the rest lands in accelerate's
    embedding, head and root units): for each part of the stage's model (``parts``: name -> attribute),
    the layer classes a transformers model names in ``_no_split_modules`` (a causal LM's decoder layers),
    else the part itself (the vision tower, the projector). accelerate looks a class up by its name (the
    first module of that name, depth first) and wraps its instances; a name that would find another
    class is refused."""
    from accelerate.utils.dataclasses import get_module_class_from_name

    units: dict[str, type] = {}
    for attr in parts.values():
        part = getattr(model, attr, None)
        if part is None:
            continue
        named = set(getattr(part, "_no_split_modules", None) or ())
        layers = {type(m).__name__: type(m) for m in part.modules() if type(m).__name__ in named}
        units.update(layers or {type(part).__name__: type(part)})
    for name, cls in units.items():
        found = get_module_class_from_name(model, name)
        if found is not cls:
            raise ValueError(f"FSDP unit {cls.__module__}.{cls.__qualname__}: its name {name!r} finds "
                             f"{found.__module__}.{found.__qualname__} first; accelerate wraps by class name")
    return sorted(units)


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
