"""Results as JSON (every setting recorded) and as a markdown table with chance beside each score."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vlm.eval.task import Sample, Scores, Task


def task_result(
    task: Task, samples: Sequence[Sample], scores: Scores, errors: list[dict] | None = None
) -> dict:
    """One task's JSON-ready result; ``errors`` are the unreadable samples (scored wrong)."""
    errors = errors or []
    return {
        "description": task.description,
        "headline": task.headline,
        "percent": task.percent,
        "n": len(samples),
        "metrics": scores.metrics,
        "chance": scores.chance,
        "breakdown": scores.breakdown,
        "bad_samples": len(errors),
        "errors": errors[:20],
    }


def _fmt(value: Any, percent: bool) -> str:
    if not isinstance(value, int | float):
        return "" if value is None else str(value)
    return f"{100 * value:.1f}" if percent else f"{value:.1f}"


def markdown(results: dict[str, dict[str, Any]], style: str) -> str:
    """A summary table (headline metric, chance, n, unreadable samples), then one breakdown table per
    task (per split / question type)."""
    lines = [
        f"prompt style: {style}; chance = the best constant reply (per type where a breakdown has one)",
        "",
        "| task | metric | score | chance | n | bad samples |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        head, pct = r["headline"], r["percent"]
        lines.append(
            f"| {name} | {head} | {_fmt(r['metrics'][head], pct)} | {_fmt(r['chance'].get(head), pct)} "
            f"| {r['n']} | {r['bad_samples']} |"
        )
    for name, r in results.items():
        if not r["breakdown"]:
            continue
        columns = list(dict.fromkeys(k for row in r["breakdown"].values() for k in row))
        lines += [
            "",
            f"**{name}**",
            "",
            "| | " + " | ".join(columns) + " |",
            "|---" * (len(columns) + 1) + "|",
        ]
        for group, row in r["breakdown"].items():
            cells = [
                str(row[c]) if c in ("n", "tp", "fp", "tn", "fn") else _fmt(row.get(c), r["percent"])
                for c in columns
            ]
            lines.append(f"| {group} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_results(
    out: Path, settings: dict[str, Any], results: dict[str, dict[str, Any]], environment: dict[str, str]
) -> dict[str, Any]:
    """Write ``OUT/results.json`` and ``OUT/results.md``; print and return the results."""
    out.mkdir(parents=True, exist_ok=True)
    payload = {"settings": settings, "environment": environment, "results": results}
    (out / "results.json").write_text(json.dumps(payload, indent=1))
    table = markdown(results, settings["style"])
    (out / "results.md").write_text(table + "\n")
    print(table)
    print(f"\nwrote {out / 'results.json'} and {out / 'results.md'}")
    return payload
