"""Per-sample prediction files: JSON lines appended one batch at a time, so an interrupted evaluation
resumes where it stopped. The file name carries a fingerprint of everything that changes a reply
(model weights, task, data, prompt style, decoding), so changed settings never reuse stale replies."""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any


def fingerprint(settings: Mapping[str, Any]) -> str:
    """A short stable hash of JSON-serialisable settings."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:12]


def model_fingerprint(model_path: str | Path) -> dict[str, Any]:
    """Identifies a model folder's contents cheaply: config text hash and each weight file's size."""
    path = Path(model_path).resolve()
    config = path / "config.json"
    weights = sorted(path.glob("*.safetensors"))
    return {
        "path": str(path),
        "config": hashlib.sha256(config.read_bytes()).hexdigest()[:12] if config.is_file() else None,
        "weights": {w.name: w.stat().st_size for w in weights},
    }


class PredictionLog:
    """``{"id", "prediction"[, "error"]}`` lines; ``done`` maps sample id to its row."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.done: dict[str, dict] = {}
        if self.path.is_file():
            for line in self.path.read_text().splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    break  # a line cut by a kill: everything before it is kept, it is redone
                self.done[row["id"]] = row
            self._rewrite()  # drop a torn last line before appending

    def add(self, rows: Iterable[dict]) -> None:
        rows = list(rows)
        with self.path.open("a") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.done.update((row["id"], row) for row in rows)

    def _rewrite(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(row) + "\n" for row in self.done.values()))
        tmp.replace(self.path)


def read_predictions(path: Path) -> dict[str, str]:
    """A predictions file to score: JSON lines (or one JSON list) of rows with an id (``id`` or
    ``question_id``; POPE rows may add ``category``) and a reply (``prediction``, ``text`` as LLaVA's
    answer files have it, or ``answer``). A repeated id is also stored as ``ID#k`` (k-th in file order):
    LLaVA's MME answer files give both questions of an image the same id."""
    path = Path(path)
    text = path.read_text()
    rows = (
        json.loads(text)
        if text.lstrip().startswith("[")
        else [json.loads(line) for line in text.splitlines() if line.strip()]
    )
    out: dict[str, str] = {}
    seen: Counter[str] = Counter()
    for n, row in enumerate(rows, 1):
        key = next((k for k in ("id", "question_id") if k in row), None)
        reply = next((k for k in ("prediction", "text", "answer") if k in row), None)
        if key is None or reply is None:
            raise ValueError(
                f"{path} row {n}: needs an id (id/question_id) and a reply (prediction/text/answer)"
            )
        sid = str(row[key])
        if "category" in row and key == "question_id":
            sid = f"{row['category']}_{sid}"
        out[sid] = out[f"{sid}#{seen[sid]}"] = str(row[reply])
        seen[sid] += 1
    return out
