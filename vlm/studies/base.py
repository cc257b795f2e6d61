"""A study: a controlled comparison as data. Arms are recipe runs that differ in one factor (an override
may name an earlier arm's result in the same seed as ``{ARM}``); every arm runs once per seed into
STUDY_DIR/ARM/seed-S/ (a finished one is not run again); the metrics are read off each run's eval.json;
claims compare two arms seed by seed (`vlm.studies.stats`) and say whether the paper's direction holds."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from vlm.recipes.base import RECIPES
from vlm.recipes.run import resolve, run_recipe
from vlm.registry import Registry
from vlm.studies.stats import Estimate, estimate, paired, verdict


@dataclass(frozen=True)
class Arm:
    name: str
    recipe: str
    args: tuple[str, ...] = ()  # overrides; "{ARM}" becomes that earlier arm's final model folder (same seed)
    preset: str | None = None
    x: float | None = None  # where the arm sits on the study's plot axis (e.g. its resolution), if it has one


@dataclass(frozen=True)
class Claim:
    """``treatment`` against ``control`` on ``metric``: supported when the paired difference's 95 % interval
    lies above ``margin`` (below it when lower is better); a negative margin states "matches or beats"."""

    text: str
    treatment: str
    control: str
    metric: str
    higher_is_better: bool = True
    margin: float = 0.0


@dataclass(frozen=True)
class Study:
    name: str
    arms: tuple[Arm, ...]
    metrics: dict[str, str] = field(default_factory=dict)  # label -> "task/metric" or "task/group/metric"
    claims: tuple[Claim, ...] = ()
    axis: str = ""  # the plot's x label, for arms that give an ``x``
    doc: str = ""

    def arm_args(self, arm: Arm, out: Path, seed: int | None = None) -> list[str]:
        folder = (lambda name: out / name / f"seed-{seed}") if seed is not None else (lambda name: out / name)
        results = {a.name: str(folder(a.name) / "model") for a in self.arms}
        args = [a.format(**results) for a in arm.args]
        seeded = ["--seed", str(seed)] if seed is not None else []
        return [*(["--preset", arm.preset] if arm.preset else []), *args, *seeded,
                "--run.output_dir", str(folder(arm.name))]


STUDIES: Registry[Study] = Registry("study", package="vlm.studies")


def run_study(study: Study, out: Path, seeds: tuple[int, ...] = (0,), extra: list[str] | None = None) -> dict:
    """Every arm for every seed (``extra`` overrides added to each), then the report in ``out``."""
    for seed in seeds:
        for arm in study.arms:
            args = study.arm_args(arm, out, seed)
            folder = Path(args[-1])
            entry = RECIPES.get(arm.recipe)
            recipe = resolve(entry.default, entry.presets, [*args, *(extra or [])])
            evaluates = recipe.run.eval_limit != 0 and bool(recipe.run.eval_tasks)
            if (folder / "model").is_dir() and ((folder / "eval.json").is_file() or not evaluates):
                continue
            recipe.run.resume = folder.is_dir()
            run_recipe(recipe)
    return write_report(study, out, seeds)


def scores(folder: Path, metrics: dict[str, str]) -> dict[str, float | None]:
    """The study's metrics from one run's eval.json (None where the run has no such score)."""
    path = folder / "eval.json"
    results = json.loads(path.read_text())["results"] if path.is_file() else {}
    out: dict[str, float | None] = {}
    for label, where in metrics.items():
        task, *rest = where.split("/")
        found = results.get(task, {})
        found = found.get("metrics", {}).get(rest[0]) if len(rest) == 1 else found.get("breakdown", {}).get(rest[0], {}).get(rest[1])
        out[label] = found
    return out


def summarise(study: Study, out: Path, seeds: tuple[int, ...]) -> dict:
    """Per arm and metric the values over seeds and their estimate; per claim the paired difference and verdict."""
    values = {arm.name: {label: [scores(out / arm.name / f"seed-{s}", study.metrics)[label] for s in seeds]
                         for label in study.metrics} for arm in study.arms}
    arms = {name: {label: (estimate(v) if all(x is not None for x in v) else None) for label, v in by.items()}
            for name, by in values.items()}
    claims = []
    for claim in study.claims:
        difference = paired(values[claim.treatment][claim.metric], values[claim.control][claim.metric])
        claims.append({"claim": claim, "difference": difference,
                       "verdict": verdict(difference, claim.higher_is_better, claim.margin)})
    return {"values": values, "arms": arms, "claims": claims}


def write_report(study: Study, out: Path, seeds: tuple[int, ...]) -> dict:
    """``out/report.md``, ``out/report.json`` and ``out/report.png``; returns the summary."""
    summary = summarise(study, out, seeds)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text(markdown(study, summary, seeds))
    (out / "report.json").write_text(json.dumps(_jsonable(summary), indent=1))
    plot(study, summary, out / "report.png")
    print(markdown(study, summary, seeds))
    return summary


def markdown(study: Study, summary: dict, seeds: tuple[int, ...]) -> str:
    labels = list(study.metrics)
    lines = [f"### {study.name}", "", (study.doc.strip().splitlines() or [""])[0], "",
             f"Mean ± 95 % CI over seeds {', '.join(map(str, seeds))} (percent):", "",
             f"| arm | {' | '.join(labels)} |", "|---" * (len(labels) + 1) + "|"]
    for name, by in summary["arms"].items():
        lines.append(f"| {name} | {' | '.join(_percent(by[label]) for label in labels)} |")
    if summary["claims"]:
        lines += ["", "| claim | paired difference (points) | verdict |", "|---|---|---|"]
        for c in summary["claims"]:
            lines.append(f"| {c['claim'].text} | {_percent(c['difference'])} | **{c['verdict']}** |")
    return "\n".join(lines) + "\n"


def _percent(e: Estimate | None) -> str:
    if e is None:
        return "—"
    return f"{100 * e.mean:.1f}" if e.n < 2 or math.isnan(e.half_width) else f"{100 * e.mean:.1f} ± {100 * e.half_width:.1f}"


def plot(study: Study, summary: dict, path: Path) -> None:
    """Each metric against the arms' ``x`` (a line per metric) where the arms have one, else grouped bars;
    95 % intervals as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    labels, arms = list(study.metrics), list(study.arms)
    fig, ax = plt.subplots(figsize=(7, 4))
    for k, label in enumerate(labels):
        means = [100 * summary["arms"][a.name][label].mean if summary["arms"][a.name][label] else math.nan for a in arms]
        errors = [100 * _half(summary["arms"][a.name][label]) for a in arms]
        if all(a.x is not None for a in arms):
            ax.errorbar([a.x for a in arms], means, yerr=errors, marker="o", capsize=3, label=label)
        else:
            width = 0.8 / len(labels)
            ax.bar([i + k * width for i in range(len(arms))], means, width, yerr=errors, capsize=3, label=label)
    if not all(a.x is not None for a in arms):
        ax.set_xticks([i + 0.4 - 0.4 / len(labels) for i in range(len(arms))], [a.name for a in arms])
    ax.set_xlabel(study.axis or "arm")
    ax.set_ylabel("percent")
    ax.set_title(study.name)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _half(e: Estimate | None) -> float:
    return 0.0 if e is None or math.isnan(e.half_width) else e.half_width


def _jsonable(summary: dict) -> dict:
    def est(e: Estimate | None) -> dict | None:
        return None if e is None else {"mean": e.mean, "half_width": None if math.isnan(e.half_width) else e.half_width, "n": e.n}

    return {
        "values": summary["values"],
        "arms": {name: {label: est(e) for label, e in by.items()} for name, by in summary["arms"].items()},
        "claims": [{"text": c["claim"].text, "treatment": c["claim"].treatment, "control": c["claim"].control,
                    "metric": c["claim"].metric, "difference": est(c["difference"]), "verdict": c["verdict"]}
                   for c in summary["claims"]],
    }
