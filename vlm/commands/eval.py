"""``vlm eval run`` (a model over benchmarks), ``vlm eval score`` (existing predictions, no model) and
``vlm eval list`` (the benchmarks and prompt styles)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vlm.cli import COMMANDS, Command


def _data_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", action="append", default=[], metavar="[TASK=]PATH",
                   help="a benchmark's released files; TASK= may be left out with a single task (repeatable)")


def _data_map(entries: list[str], tasks: list[str]) -> dict[str, str]:
    out = {}
    for entry in entries:
        name, sep, path = entry.partition("=")
        if not sep:
            if len(tasks) != 1:
                raise ValueError(f"--data {entry}: name the task (--data TASK=PATH) when running several")
            name, path = tasks[0], entry
        if name not in tasks:
            raise ValueError(f"--data names task {name!r}, which is not among {tasks}")
        out[name] = path
    return out


def _run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="a vlm model folder or a native (exported) Llava folder")
    p.add_argument("--tasks", required=True, help="comma-separated task names (see `vlm eval list`)")
    _data_argument(p)
    p.add_argument("--style", default="llava15", help="prompt style (llava15, plain); recorded with results")
    p.add_argument("--mode", default="generate", choices=["generate", "likelihood"],
                   help="likelihood: multiple-choice tasks pick the most likely option")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-new-tokens", type=int, help="default: each task's own")
    p.add_argument("--limit", type=int, help="only the first N samples of each task")
    p.add_argument("--out", help="results folder (default runs/eval/<parent>-<model folder>)")
    p.add_argument("--strict", action="store_true", help="stop at the first unreadable image")


def _run(a: argparse.Namespace) -> int:
    from vlm.eval.runner import EvalSettings, evaluate

    if a.batch_size < 1:
        raise ValueError("--batch-size must be at least 1")
    tasks = [t for t in a.tasks.split(",") if t]
    evaluate(EvalSettings(model=a.model, tasks=tasks, data=_data_map(a.data, tasks), style=a.style, mode=a.mode,
                          batch_size=a.batch_size, max_new_tokens=a.max_new_tokens, limit=a.limit, out=a.out,
                          strict=a.strict))
    return 0


def _score_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", required=True, help="the task the predictions answer")
    p.add_argument("--predictions", required=True, help="JSON lines of {id|question_id, prediction|text}")
    _data_argument(p)
    p.add_argument("--style", default="llava15", help="prompt style the table names")
    p.add_argument("--json", action="store_true", help="print JSON")


def _score(a: argparse.Namespace) -> int:
    from vlm.eval.predictions import read_predictions
    from vlm.eval.report import markdown, task_result
    from vlm.eval.task import get_task

    task = get_task(a.task)
    data = _data_map(a.data, [a.task]).get(a.task) or task.default_data()
    if data is None:
        raise ValueError(f"task {a.task!r} reads its released files: pass --data PATH")
    samples = task.read(Path(data))
    replies = read_predictions(Path(a.predictions))
    missing = [s.id for s in samples if s.id not in replies]
    if missing:
        raise ValueError(
            f"{a.predictions} answers {len(samples) - len(missing)} of {len(samples)} samples; "
            f"missing ids include {missing[:5]}"
        )
    result = task_result(task, samples, task.score(samples, [replies[s.id] for s in samples]))
    print(json.dumps(result, indent=1) if a.json else markdown({a.task: result}, a.style))
    return 0


def _list(a: argparse.Namespace) -> int:
    from vlm.eval.prompts import PROMPT_STYLES
    from vlm.eval.task import TASKS, Task

    for name in TASKS:
        task = TASKS.get(name)
        data = "generated" if task.default_data is not Task.default_data else "--data"
        print(f"{name:<20} {data:<10} {task.description}")
    print("prompt styles:", ", ".join(PROMPT_STYLES))
    return 0


COMMANDS.register("eval run", Command("run a model over benchmarks (replies cached, resumable)", _run_arguments, _run))
COMMANDS.register("eval score", Command("score a predictions file, no model needed", _score_arguments, _score))
COMMANDS.register("eval list", Command("list the benchmarks and prompt styles", lambda p: None, _list))
