"""Running a recipe: parse ``--preset`` and overrides, build the starting model, run each stage on
the previous stage's output folder, evaluate on held-out synthetic data, print where the model is.

Run folder layout::

    RUN/config.yaml  train.log  metrics.jsonl  loss.png  logs/ (TensorBoard)  eval.json
    RUN/init/                      the assembled, untrained model (from_pretrained folder)
    RUN/stages/NAME/checkpoints/   atomic, resumable checkpoints of stage NAME
    RUN/stages/NAME/model/         stage NAME's result: the next stage's starting point
    RUN/model/                     the last stage's result: the recipe's final model
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

from vlm.build import build
from vlm.data.registry import open_source
from vlm.hub import PartNotFoundError
from vlm.train.config import Recipe
from vlm.train.engine import make_accelerator, no_zero_init, save_folder
from vlm.train.loop import train_stage
from vlm.train.observe import MetricsLog, log, setup_logging
from vlm.train.overrides import apply_overrides, parse_overrides, to_yaml
from vlm.train.stages import STAGES
from vlm.vision.sources import folder_kind


def resolve(default: Recipe, presets: Mapping[str, Recipe], argv: list[str]) -> Recipe:
    """``--preset NAME`` picks a preset (else the embedded default), then every other flag overrides it."""
    overrides = parse_overrides(argv)
    name = overrides.pop("preset", None)
    if name is not None and name not in presets:
        raise SystemExit(f"unknown preset {name!r}; presets: {sorted(presets)}")
    recipe = copy.deepcopy(presets[name] if name else default)
    run_fields = {f.name for f in dataclasses.fields(recipe.run)}
    # run settings may drop their section: --resume, --output_dir, --seed ...
    overrides = {f"run.{k}" if k in run_fields else k: v for k, v in overrides.items()}
    apply_overrides(recipe, overrides)
    for stage in recipe.stages:
        STAGES.get(stage.kind)
    return recipe


def run_recipe(recipe: Recipe) -> Path:
    """Train every stage in order; returns the final model folder."""
    run_dir = Path(recipe.run.output_dir)
    accelerator = make_accelerator(recipe.run, run_dir)
    if accelerator.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        if not recipe.run.resume and any(run_dir.glob("stages/*")):
            raise SystemExit(f"{run_dir} holds an earlier run; pass --resume to continue it or choose --run.output_dir")
        (run_dir / "config.yaml").write_text(to_yaml(recipe))
    accelerator.wait_for_everyone()
    setup_logging(run_dir, accelerator.is_main_process)
    if recipe.run.tracker != "none":
        accelerator.init_trackers(recipe.name, config=_flat(to_dict(recipe)))
    metrics = MetricsLog(accelerator, run_dir)
    log.info("recipe %s -> %s (%d process(es), %s)", recipe.name, run_dir, accelerator.num_processes, accelerator.distributed_type)

    source = run_dir / "init"
    if accelerator.is_main_process and not source.is_dir():
        for stage in recipe.stages:  # missing corpora fail before anything large loads
            if stage.data.source != "synthetic":
                open_source(stage.data, recipe.run.seed)
        if recipe.run.start_from:  # continue a finished model (e.g. preference tuning after instruct)
            copy_folder(Path(recipe.run.start_from), source)
        else:
            with no_zero_init(accelerator):  # only this process builds: no partitioning collectives
                save_folder(*build(recipe.model), source)
    accelerator.wait_for_everyone()

    final = run_dir / "model"
    for i, cfg in enumerate(recipe.stages):
        stage_dir = run_dir / "stages" / cfg.name
        out = final if i == len(recipe.stages) - 1 else stage_dir / "model"
        source = train_stage(accelerator, STAGES.get(cfg.kind)(cfg), source, stage_dir, out, recipe.run, metrics)
    metrics.plot(run_dir / "loss.png")
    accelerator.end_training()
    if accelerator.is_main_process and recipe.run.eval_limit != 0 and recipe.run.eval_tasks:
        with no_zero_init(accelerator):  # the other processes are gone: a partitioned load would wait for them
            evaluate(final, recipe, run_dir)
    log.info("final model: %s (load with AutoModelForImageTextToText.from_pretrained)", final)
    return final


def copy_folder(src: Path, out: Path) -> Path:
    """A finished model folder as ``out`` (copied aside, renamed into place)."""
    if not (src / "config.json").is_file() and not (src.is_dir() and _encoder_folder(src)):
        raise SystemExit(f"--run.start_from {src}: not a model folder (no config.json) nor an encoder folder")
    tmp = out.with_name(f".tmp-{out.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    os.replace(tmp, out)
    return out


def _encoder_folder(folder: Path) -> bool:
    """An encoder in a library's own layout (open_clip's has no config.json), as the maskembed stage starts from."""
    try:
        folder_kind(folder)
    except PartNotFoundError:
        return False
    return True


def evaluate(model_dir: Path, recipe: Recipe, run_dir: Path) -> None:
    """`vlm eval` on the final model (default: the held-out synthetic suite), results in RUN/eval/ and
    RUN/eval.json, the table in the log."""
    from vlm.eval.report import markdown
    from vlm.eval.runner import EvalSettings
    from vlm.eval.runner import evaluate as run_eval

    settings = EvalSettings(
        model=str(model_dir),
        tasks=list(recipe.run.eval_tasks),
        limit=recipe.run.eval_limit,
        batch_size=recipe.run.eval_batch_size,
        out=str(run_dir / "eval"),
    )
    payload = run_eval(settings)
    (run_dir / "eval.json").write_text(json.dumps(payload, indent=1))
    log.info("held-out evaluation (%s):\n%s", ", ".join(settings.tasks), markdown(payload["results"], settings.style))


def to_dict(recipe: Recipe) -> dict:
    """The recipe as nested dicts, stages keyed by name (the same paths the overrides use)."""
    out = dataclasses.asdict(recipe)
    out["stages"] = {s["name"]: s for s in out["stages"]}
    return out


def _flat(d: dict, prefix: str = "") -> dict:
    """Scalar hyperparameters for the trackers: ``{"stages.align.optim.lr": 1e-3, ...}``."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        elif v is not None:
            out[f"{prefix}{k}"] = v if isinstance(v, (int, float, str, bool)) else str(v)
    return out


def main(default: Recipe, presets: Mapping[str, Recipe], argv: list[str] | None = None) -> Path:
    recipe = resolve(default, presets, sys.argv[1:] if argv is None else argv)
    return run_recipe(recipe)
