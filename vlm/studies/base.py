"""A study: named arms, each a recipe run with overrides (an override may name an earlier arm's result
as ``{ARM}``), and the metrics to set side by side. Arms run in order into STUDY_DIR/ARM/; an arm whose
model and evaluation exist is not run again."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from vlm.recipes.base import RECIPES
from vlm.recipes.run import resolve, run_recipe
from vlm.registry import Registry


@dataclass(frozen=True)
class Arm:
    name: str
    recipe: str
    args: tuple[str, ...] = ()  # overrides; "{ARM}" becomes that earlier arm's final model folder
    preset: str | None = None


@dataclass(frozen=True)
class Study:
    name: str
    arms: tuple[Arm, ...]
    metrics: dict[str, str] = field(default_factory=dict)  # label -> "task/metric" or "task/group/metric"
    doc: str = ""

    def arm_args(self, arm: Arm, out: Path) -> list[str]:
        results = {a.name: str(out / a.name / "model") for a in self.arms}
        args = [a.format(**results) for a in arm.args]
        return [*(["--preset", arm.preset] if arm.preset else []), *args, "--run.output_dir", str(out / arm.name)]


STUDIES: Registry[Study] = Registry("study", package="vlm.studies")


def run_study(study: Study, out: Path, extra: list[str] | None = None) -> dict:
    """Every arm in order (``extra`` overrides added to each), then ``out/report.json`` and the table."""
    for arm in study.arms:
        folder = out / arm.name
        if (folder / "model").is_dir() and ((folder / "eval.json").is_file() or not _evaluates(arm, study, out)):
            continue
        entry = RECIPES.get(arm.recipe)
        resume = ["--resume"] if folder.is_dir() else []
        run_recipe(resolve(entry.default, entry.presets, [*study.arm_args(arm, out), *(extra or []), *resume]))
    report = {arm.name: _scores(out / arm.name, study.metrics) for arm in study.arms}
    (out / "report.json").write_text(json.dumps(report, indent=1))
    print(table(study, report))
    return report


def _evaluates(arm: Arm, study: Study, out: Path) -> bool:
    entry = RECIPES.get(arm.recipe)
    recipe = resolve(entry.default, entry.presets, study.arm_args(arm, out))
    return recipe.run.eval_limit != 0 and bool(recipe.run.eval_tasks)


def _scores(folder: Path, metrics: dict[str, str]) -> dict[str, float | None]:
    path = folder / "eval.json"
    results = json.loads(path.read_text())["results"] if path.is_file() else {}
    out: dict[str, float | None] = {}
    for label, where in metrics.items():
        task, *rest = where.split("/")
        found = results.get(task, {})
        found = found.get("metrics", {}).get(rest[0]) if len(rest) == 1 else found.get("breakdown", {}).get(rest[0], {}).get(rest[1])
        out[label] = found
    return out


def table(study: Study, report: dict) -> str:
    labels = list(study.metrics)
    lines = [f"| arm | {' | '.join(labels)} |", "|---" * (len(labels) + 1) + "|"]
    for arm, scores in report.items():
        cells = ["—" if scores[k] is None else f"{100 * scores[k]:.1f}" for k in labels]
        lines.append(f"| {arm} | {' | '.join(cells)} |")
    return "\n".join(lines)
