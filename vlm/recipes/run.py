"""Running a recipe: resolve ``--preset`` and overrides, build (or find) the starting model, run each
stage on the previous stage's output folder, then evaluate the result.

Run folder layout::

    RUN/config.yaml  train.log  metrics.jsonl  loss.png  logs/ (TensorBoard)  eval.json
    RUN/init/                      the assembled, untrained model (or a copy of ``run.start_from``)
    RUN/stages/NAME/checkpoints/   atomic, resumable checkpoints of stage NAME
    RUN/stages/NAME/model/         stage NAME's result: the next stage's starting point
    RUN/model/                     the last stage's result: the recipe's final model

``run.start_from`` is a model folder, a named part (an encoder, for encoder stages) or
``recipe:NAME``: that recipe's final model when its default run has finished, else its stages run
first, in this run. ``run.compare_with`` names a stage: the model it started from is evaluated too,
and the evaluation shows both side by side (before / after).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path

import yaml

from vlm.build import build
from vlm.cache import BUILT
from vlm.eval.report import markdown
from vlm.eval.runner import EvalSettings
from vlm.eval.runner import evaluate as run_eval
from vlm.hub import PartNotFoundError, resolve_part
from vlm.recipes.base import RECIPES
from vlm.train.config import Recipe
from vlm.train.engine import make_accelerator, no_zero_init, save_folder
from vlm.train.loop import train_stage
from vlm.train.observe import MetricsLog, log, setup_logging
from vlm.train.overrides import apply_overrides, from_dict, parse_overrides, to_yaml
from vlm.train.stages.base import STAGES, stage_options
from vlm.vision.sources import folder_kind

RECIPE_PREFIX = "recipe:"


def resolve(default: Recipe, presets: Mapping[str, Recipe], argv: list[str]) -> Recipe:
    """``--preset NAME`` picks a preset (else the embedded default), ``--config FILE`` a saved run's
    resolved recipe instead; then every other flag overrides it."""
    overrides = parse_overrides(argv)
    name, config = overrides.pop("preset", None), overrides.pop("config", None)
    if config is not None:
        recipe = from_dict(Recipe, yaml.safe_load(Path(config).read_text()))
    elif name is not None and name not in presets:
        raise SystemExit(f"unknown preset {name!r}; presets: {sorted(presets)}")
    else:
        recipe = copy.deepcopy(presets[name] if name else default)
    for stage in recipe.stages:  # each stage's options as its kind's dataclass, so overrides can reach them
        stage.options = stage_options(STAGES.get(stage.kind), stage.options)
    run_fields = {f.name for f in dataclasses.fields(recipe.run)}
    # run settings may drop their section: --resume, --output_dir, --seed ...
    overrides = {f"run.{k}" if k in run_fields else k: v for k, v in overrides.items()}
    apply_overrides(recipe, overrides)
    return with_start(recipe)


def with_start(recipe: Recipe) -> Recipe:
    """``run.start_from = "recipe:NAME"``: NAME's finished default model, or else NAME's stages first."""
    start = recipe.run.start_from
    if not start or not start.startswith(RECIPE_PREFIX):
        return recipe
    earlier = RECIPES.get(start.removeprefix(RECIPE_PREFIX)).default
    finished = Path(earlier.run.output_dir) / "model"
    if (finished / "config.json").is_file():
        recipe.run.start_from = str(finished)
    else:
        recipe.stages = [*copy.deepcopy(earlier.stages), *recipe.stages]
        recipe.model, recipe.run.start_from = copy.deepcopy(earlier.model), None
    return recipe


def run_recipe(recipe: Recipe) -> Path:
    """Train every stage in order, then evaluate; returns the final model folder."""
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
    metrics, phases = MetricsLog(accelerator, run_dir), Phases()
    log.info("recipe %s -> %s (%d process(es), %s)", recipe.name, run_dir, accelerator.num_processes, accelerator.distributed_type)

    source = run_dir / "init"
    if accelerator.is_main_process and not source.is_dir():
        with phases("build"):
            for cfg in recipe.stages:  # missing corpora fail before anything large loads
                if cfg.data.path is not None:
                    STAGES.get(cfg.kind)(cfg).source(recipe.run.seed)
            if recipe.run.start_from:  # continue a finished model (e.g. preference tuning after instruct)
                copy_folder(start_folder(recipe.run.start_from), source)
            elif recipe.model is None:
                raise SystemExit(f"recipe {recipe.name} builds no model (model: none): give --run.start_from")
            else:
                with no_zero_init(accelerator):  # only this process builds: no partitioning collectives
                    save_folder(*build(recipe.model), source)
    accelerator.wait_for_everyone()

    final = run_dir / "model"
    starts: dict[str, Path] = {}
    for i, cfg in enumerate(recipe.stages):
        starts[cfg.name] = source
        stage_dir = run_dir / "stages" / cfg.name
        out = final if i == len(recipe.stages) - 1 else stage_dir / "model"
        with phases(f"stage {cfg.name}"):
            source = train_stage(accelerator, STAGES.get(cfg.kind)(cfg), source, stage_dir, out, recipe.run, metrics)
    metrics.plot(run_dir / "loss.png")
    accelerator.end_training()
    if accelerator.is_main_process and recipe.run.eval_limit != 0 and recipe.run.eval_tasks:
        with phases("evaluation"), no_zero_init(accelerator):  # the other processes are gone: no partitioned load
            before = starts.get(recipe.run.compare_with) if recipe.run.compare_with else None
            evaluate(final, recipe, run_dir, before)
    log.info("final model: %s (load with AutoModelForImageTextToText.from_pretrained)", final)
    if accelerator.is_main_process:
        built = ", ".join(f"{name} {_clock(seconds)}" for name, seconds in BUILT.items())
        log.info("wall time per phase: %s%s", phases.summary(), f" (built into the cache: {built})" if built else "")
    return final


class Phases:
    """Wall time of each phase of a run, for its closing line."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    def __call__(self, name: str) -> _Timer:
        return _Timer(self.seconds, name)

    def summary(self) -> str:
        parts = [f"{name} {_clock(s)}" for name, s in self.seconds.items()]
        return ", ".join(parts + [f"total {_clock(sum(self.seconds.values()))}"])


class _Timer:
    def __init__(self, into: dict[str, float], name: str):
        self.into, self.name = into, name

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *exc) -> None:
        self.into[self.name] = self.into.get(self.name, 0.0) + time.perf_counter() - self.start


def _clock(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s" if minutes else f"{rest}s"


def start_folder(start: str) -> Path:
    """``run.start_from`` as a folder: a model or encoder folder, or a named part (built on first use)."""
    try:
        folder = resolve_part(start)
        if not (folder / "config.json").is_file():
            folder_kind(folder)  # an encoder in a library's own layout (open_clip's has no config.json)
        return folder
    except PartNotFoundError as err:
        raise SystemExit(f"--run.start_from {start}: not a model folder nor an encoder folder ({err})") from None


def copy_folder(src: Path, out: Path) -> Path:
    """A finished model (or encoder) folder as ``out`` (copied aside, renamed into place)."""
    tmp = out.with_name(f".tmp-{out.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    os.replace(tmp, out)
    return out


def evaluate(model_dir: Path, recipe: Recipe, run_dir: Path, before: Path | None = None) -> dict:
    """`vlm eval` on the final model (default: the held-out synthetic suite), results in RUN/eval/ and
    RUN/eval.json, the table in the log; with ``before``, that model too (RUN/eval-before/, under
    ``before`` in eval.json)."""
    settings = EvalSettings(model=str(model_dir), tasks=list(recipe.run.eval_tasks), limit=recipe.run.eval_limit,
                            batch_size=recipe.run.eval_batch_size, out=str(run_dir / "eval"))
    payload = run_eval(settings)
    table = markdown(payload["results"], settings.style)
    if before is not None:
        earlier = run_eval(dataclasses.replace(settings, model=str(before), out=str(run_dir / "eval-before")))
        payload["before"] = {"model": str(before), "results": earlier["results"]}
        table = f"before ({before}):\n{markdown(earlier['results'], settings.style)}\n\nafter:\n{table}"
    (run_dir / "eval.json").write_text(json.dumps(payload, indent=1))
    log.info("held-out evaluation (%s):\n%s", ", ".join(settings.tasks), table)
    return payload


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
