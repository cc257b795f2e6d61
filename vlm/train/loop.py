"""The one training loop: any `Stage`, on accelerate (single process, DDP, FSDP, DeepSpeed ZeRO-2/3).

Per optimizer step it takes ``grad_accum`` micro-batches, counts their loss terms across all
processes, and scales each micro-batch's summed loss by that total, so the step's gradient is the
exact mean over every supervised token of the step, whatever the padding or accumulation.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from vlm.data.dataset import take_bad_samples
from vlm.data.errors import BadSampleLog
from vlm.data.sampler import ModalityLengthGroupedSampler
from vlm.train.checkpoint import (
    TrainerState,
    clean_partial,
    latest_usable,
    load_checkpoint,
    save_checkpoint,
    store_trainable_only,
)
from vlm.train.config import RunConfig
from vlm.train.engine import configure_engine, save_final_model
from vlm.train.observe import MetricsLog, log
from vlm.train.optim import make_optimizer, make_scheduler
from vlm.train.stages.base import Stage
from vlm.train.trainable import parameter_table


def train_stage(
    accelerator: Accelerator, stage: Stage, source: Path, stage_dir: Path, out: Path, run: RunConfig,
    metrics: MetricsLog,
) -> Path:
    """Train ``stage`` from the model folder ``source`` (checkpoints under ``stage_dir``); the result
    is written to ``out``, which is returned. A stage whose ``out`` exists is already finished."""
    cfg = stage.config
    if out.is_dir():
        log.info("stage %s: already finished (%s), skipping", cfg.name, out)
        return out
    torch.manual_seed(run.seed)
    model = stage.prepare(stage.load(source))
    processor = stage.load_processor(source)
    if run.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    log.info("stage %s (%s), starting from %s\n%s", cfg.name, cfg.kind, source, parameter_table(model, stage.modes(), stage.parts))

    dataset = stage.dataset(processor, run.seed)
    lengths, modalities = dataset.source.modality_lengths() if cfg.group_by_length else ([0] * len(dataset), [True] * len(dataset))
    # a megabatch is one optimizer step's global batch, whole: the order and each step's samples depend on
    # the global batch alone, not on how processes and accumulation split it
    sampler = ModalityLengthGroupedSampler(lengths, modalities, cfg.batch_size * cfg.grad_accum, accelerator.num_processes,
                                           run.seed, drop_incomplete=True)
    loader = DataLoader(
        dataset, batch_size=cfg.batch_size, sampler=sampler, collate_fn=stage.collator(processor),
        num_workers=run.num_workers, generator=torch.Generator().manual_seed(run.seed),
    )
    optimizer = make_optimizer(model, cfg.optim, stage.parts)
    configure_engine(accelerator, cfg, model, stage.parts)
    model, prepared_optimizer, loader = accelerator.prepare(model, optimizer, loader)
    steps_per_epoch = len(loader) // cfg.grad_accum
    if steps_per_epoch == 0:
        raise ValueError(f"stage {cfg.name}: {len(dataset)} samples make no full optimizer step")
    total = cfg.max_steps or math.ceil(cfg.epochs * steps_per_epoch)
    scheduler = make_scheduler(optimizer, cfg.optim, total)

    ckpt_dir = stage_dir / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    clean_partial(accelerator, ckpt_dir)
    hook = store_trainable_only(accelerator)
    state, bad, window = TrainerState(), BadSampleLog(strict=run.strict), _Window()
    spare: list[dict] = []  # this process's last usable micro-batch
    latest = latest_usable(accelerator, ckpt_dir) if run.resume else None
    if latest is not None:
        state = load_checkpoint(accelerator, latest, model, prepared_optimizer)
        scheduler.load_state_dict(state.scheduler)
        bad.counts.update(state.bad_samples)
        window.rows = list(state.window)
        log.info("stage %s: resumed from %s (step %d of %d)", cfg.name, latest, state.step, total)
    if run.resume:  # what the killed run logged after the point this one continues from
        metrics.truncate_after(cfg.name, state.step)

    model.train()
    # the bar closes before an error reaches the user, so the error message is the last line printed
    with tqdm(total=total, initial=state.step, desc=cfg.name, disable=not accelerator.is_main_process) as bar:
        while state.step < total:
            for obj in (loader, sampler):
                obj.set_epoch(state.epoch)
            epoch = accelerator.skip_first_batches(loader, state.step_in_epoch * cfg.grad_accum) if state.step_in_epoch else loader
            batches = iter(epoch)
            while state.step < total and state.step_in_epoch < steps_per_epoch:
                group = [take_bad_samples(next(batches), bad) for _ in range(cfg.grad_accum)]
                step = _optimizer_step(accelerator, model, prepared_optimizer, stage, group, cfg.optim.max_grad_norm, spare)
                scheduler.step()
                state.step, state.step_in_epoch = state.step + 1, state.step_in_epoch + 1
                window.add(step)
                bar.update(1)
                if state.step % cfg.log_every == 0 or state.step == total:
                    row = window.flush() | {"lr": scheduler.get_last_lr()[0], "bad_samples": bad.total}
                    bar.set_postfix(loss=f"{row['loss']:.4f}")
                    metrics.write(cfg.name, state.step, row)
                if cfg.save_every and state.step % cfg.save_every == 0 and state.step < total:
                    state.scheduler, state.bad_samples, state.window = scheduler.state_dict(), dict(bad.counts), window.rows
                    save_checkpoint(accelerator, ckpt_dir, state, cfg.keep_last, model, prepared_optimizer)
            if state.step_in_epoch >= steps_per_epoch:
                state.epoch, state.step_in_epoch = state.epoch + 1, 0
    hook.remove()
    if bad.total:
        log.warning("stage %s: %s", cfg.name, bad.summary())
    save_final_model(accelerator, model, stage, source, processor, out)
    accelerator.free_memory()
    return out


def _optimizer_step(accelerator, model, optimizer, stage: Stage, group: list[dict], max_norm: float,
                    spare: list[dict]) -> dict:
    start = time.perf_counter()
    local = sum(stage.count_items(b) for b in group if b)
    total = accelerator.reduce(torch.tensor(float(local), device=accelerator.device), "sum").clamp(min=1)
    scale = accelerator.gradient_accumulation_steps * accelerator.num_processes
    loss_sum, tokens, samples, grad_norm = 0.0, 0, 0, None
    for batch in group:
        with accelerator.accumulate(model):
            if batch:
                spare[:] = [batch]
                loss = stage.loss(model, batch, total)
                tokens += _tokens(batch)
                samples += (batch["input_ids"] if "input_ids" in batch else batch["pixel_values"]).shape[0]
            elif spare:
                # every sample of this micro-batch was bad: a real forward at zero weight keeps this process's
                # collectives (FSDP and ZeRO-3 gather weights inside forward) in step with the others
                loss = stage.loss(model, spare[0], total) * 0.0
            else:  # nothing usable yet: zero gradients straight from the parameters
                loss = sum(p.sum() * 0.0 for p in model.parameters() if p.requires_grad)
            accelerator.backward(loss * scale)
            if accelerator.sync_gradients and max_norm > 0:
                grad_norm = accelerator.clip_grad_norm_(model.parameters(), max_norm)
            optimizer.step()
            optimizer.zero_grad()
        loss_sum += float(loss.detach())
    counts = accelerator.reduce(torch.tensor([loss_sum, tokens, samples], device=accelerator.device, dtype=torch.float64), "sum")
    return {
        "loss": float(counts[0]), "tokens": float(counts[1]), "samples": float(counts[2]),
        "grad_norm": float(grad_norm) if grad_norm is not None else float("nan"),
        "seconds": time.perf_counter() - start,
    } | _stage_metrics(accelerator, stage)


def _tokens(batch: dict) -> int:
    if "attention_mask" in batch:
        return int(batch["attention_mask"].sum())
    return batch["input_ids"].numel() if "input_ids" in batch else 0  # image-only stages count no tokens


def _stage_metrics(accelerator, stage: Stage) -> dict[str, float]:
    """A stage's own metrics for the step (e.g. DPO reward margins): ``take_metrics()`` gives
    ``{name: (sum, count)}``, the same names on every process; logged as sum / count over processes."""
    extra = stage.take_metrics()
    if not extra:
        return {}
    names = sorted(extra)
    values = torch.tensor([v for n in names for v in extra[n]], device=accelerator.device, dtype=torch.float64)
    totals = accelerator.reduce(values, "sum").view(-1, 2)
    return {n: float(s / c) if c else float("nan") for n, (s, c) in zip(names, totals.tolist(), strict=True)}


class _Window:
    """Averages step metrics between two log lines."""

    def __init__(self):
        self.rows: list[dict] = []

    def add(self, row: dict) -> None:
        self.rows.append(row)

    def flush(self) -> dict:
        rows, self.rows = self.rows, []
        seconds = sum(r["seconds"] for r in rows)
        own = sorted(set(rows[0]) - {"loss", "grad_norm", "tokens", "samples", "seconds"})  # a stage's metrics
        return {
            "loss": sum(r["loss"] for r in rows) / len(rows),
            "grad_norm": sum(r["grad_norm"] for r in rows) / len(rows),
            "tokens_per_s": sum(r["tokens"] for r in rows) / seconds,
            "samples_per_s": sum(r["samples"] for r in rows) / seconds,
        } | {k: sum(r[k] for r in rows) / len(rows) for k in own}
