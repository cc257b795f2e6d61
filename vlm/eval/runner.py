"""``vlm eval``: run a model over benchmarks, one batch at a time, caching every reply.

For each task: read its samples (from ``--data`` or, for generated tasks, their cached files), skip
the samples already answered under the same settings, generate the rest in batches (left padding,
KV cache, greedy) or score options by likelihood, then score everything with the task's metric.
A sample whose image cannot be read is answered with the empty string (scored wrong), counted and
reported; ``strict`` stops instead.
"""

from __future__ import annotations

import datetime
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from vlm.data.errors import BadSample
from vlm.eval.generate import Prompt, generate_answers
from vlm.eval.likelihood import continuation_logprobs
from vlm.eval.predictions import PredictionLog, fingerprint, model_fingerprint
from vlm.eval.prompts import PROMPT_STYLES
from vlm.eval.report import task_result, write_results
from vlm.eval.task import ModelProbe, Sample, Task, get_task


@dataclass
class EvalSettings:
    model: str
    tasks: list[str]
    data: dict[str, str] = field(default_factory=dict)
    style: str = "llava15"
    mode: str = "generate"  # or "likelihood" (multiple-choice tasks; others still generate)
    batch_size: int = 16
    max_new_tokens: int | None = None  # None: each task's own
    limit: int | None = None
    out: str | None = None  # default runs/eval/<parent>-<folder> of the model
    strict: bool = False


def load_model(path: str | Path) -> tuple[Any, Any]:
    """Our folder or a native exported Llava folder, through the Auto classes, on the GPU if any."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    import vlm  # noqa: F401  (registers our Auto classes)

    if not Path(path).is_dir():
        raise FileNotFoundError(f"model folder {path} does not exist")
    model = AutoModelForImageTextToText.from_pretrained(path)
    if torch.cuda.is_available():
        model = model.to("cuda")
    return model.eval(), AutoProcessor.from_pretrained(path)


def prompt_for(task: Task, sample: Sample, style: str, images: list) -> Prompt:
    content = [{"type": "image"} for _ in images] + [{"type": "text", "text": task.prompt(sample, style)}]
    return [{"role": "user", "content": content}], images


def run_task(model: Any, processor: Any, name: str, settings: EvalSettings, out: Path) -> dict[str, Any]:
    task = get_task(name)
    data = settings.data.get(name) or task.default_data()
    if data is None:
        raise ValueError(f"task {name!r} reads its released files: pass --data {name}=PATH")
    samples = task.read(Path(data))[: settings.limit]
    if not samples:
        raise ValueError(f"task {name!r}: no samples in {data}")
    if isinstance(task, ModelProbe):
        scores = task.measure(model, processor, samples, settings.batch_size)
        return task_result(task, samples, scores) | {"settings": {"model": model_fingerprint(settings.model),
                                                                  "task": name, "data": str(Path(data).resolve())}}
    max_new = settings.max_new_tokens or task.max_new_tokens
    likelihood = settings.mode == "likelihood" and samples[0].options is not None
    key = {
        "model": model_fingerprint(settings.model),
        "task": name,
        "data": str(Path(data).resolve()),
        "style": settings.style,
        "decoding": "likelihood" if likelihood else {"greedy": True, "max_new_tokens": max_new},
    }
    (out / name).mkdir(parents=True, exist_ok=True)
    log = PredictionLog(out / name / f"predictions-{fingerprint(key)}.jsonl")
    todo = [s for s in samples if s.id not in log.done]
    bar = tqdm(total=len(samples), initial=len(samples) - len(todo), desc=name, unit="q")
    for start in range(0, len(todo), settings.batch_size):
        batch = todo[start : start + settings.batch_size]
        log.add(_answer(task, batch, model, processor, settings, max_new, likelihood))
        bar.update(len(batch))
    bar.close()
    rows = [log.done[s.id] for s in samples]
    scores = task.score(samples, [r["prediction"] for r in rows])
    errors = [{"id": r["id"], "error": r["error"]} for r in rows if "error" in r]
    return task_result(task, samples, scores, errors) | {"settings": key, "predictions": str(log.path)}


def _answer(
    task: Task,
    batch: list[Sample],
    model: Any,
    processor: Any,
    settings: EvalSettings,
    max_new: int,
    likelihood: bool,
) -> list[dict]:
    rows: list[dict] = []
    ready: list[tuple[Sample, Prompt]] = []
    for sample in batch:
        try:
            images = [ref.load(sample.id) for ref in sample.images]
        except BadSample as err:
            if settings.strict:
                raise
            rows.append({"id": sample.id, "prediction": "", "error": str(err)})
            continue
        ready.append((sample, prompt_for(task, sample, settings.style, images)))
    if likelihood:
        for sample, (messages, images) in ready:
            letters = task.kind == "choice"
            continuations = [chr(65 + i) for i in range(len(sample.options))] if letters else sample.options
            scores = continuation_logprobs(model, processor, messages, images, continuations)
            rows.append({"id": sample.id, "prediction": continuations[scores.index(max(scores))]})
    else:
        replies = generate_answers(model, processor, [p for _, p in ready], settings.batch_size, max_new)
        rows += [{"id": s.id, "prediction": r} for (s, _), r in zip(ready, replies, strict=True)]
    return rows


def evaluate(settings: EvalSettings) -> dict[str, Any]:
    """Run every task and return the results (also written to ``OUT/results.json`` and ``results.md``)."""
    PROMPT_STYLES.get(settings.style)
    if settings.mode not in ("generate", "likelihood"):
        raise ValueError(f"mode must be 'generate' or 'likelihood', not {settings.mode!r}")
    tasks = [get_task(name) and name for name in settings.tasks]  # unknown names fail before loading
    model_dir = Path(settings.model).resolve()
    out = Path(settings.out or Path("runs/eval") / f"{model_dir.parent.name}-{model_dir.name}")
    model, processor = load_model(settings.model)
    results = {name: run_task(model, processor, name, settings, out) for name in tasks}
    return write_results(out, asdict(settings), results, _environment())


def _environment() -> dict[str, str]:
    import transformers

    import vlm

    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "vlm": getattr(vlm, "__version__", "0.1.0"),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "device": "cuda" if torch.cuda.is_available() else "cpu",
    }
