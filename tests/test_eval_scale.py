"""Eval at scale: `vlm eval run` over a generated 5 000-question VQA task (the synthetic world written in
VQAv2's layout, the real reader), SIGKILLed halfway, resumed: only the missing questions are asked
again and every reply and score equals the uninterrupted run's.

Marked ``eval_scale`` (about 5 minutes on two quiet cores); run with ``bash scripts/test.sh -m eval_scale``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from train_helpers import ROOT, env, run_and_kill

from vlm.shapes.benchmarks import write_vqa

pytestmark = pytest.mark.eval_scale

QUESTIONS = 5000


def _predictions(out: Path) -> list[dict]:
    (log,) = (out / "synthetic_vqa").glob("predictions-*.jsonl")
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_killed_5000_question_eval_resumes_to_identical_scores(built_models, tmp_path):
    data = tmp_path / "vqa"
    data.mkdir()
    write_vqa(data, n_images=1100)  # about 4.9 questions per scene: over 5 000
    model = built_models()

    def command(out: Path) -> list[str]:
        return [sys.executable, "-m", "vlm.cli", "eval", "run", "--model", str(model), "--tasks", "synthetic_vqa",
                "--data", f"synthetic_vqa={data}", "--limit", str(QUESTIONS), "--batch-size", "64",
                "--max-new-tokens", "4", "--out", str(out)]

    straight, killed = tmp_path / "straight", tmp_path / "killed"
    subprocess.run(command(straight), env=env(), cwd=ROOT, check=True, capture_output=True)

    def halfway() -> bool:
        logs = list((killed / "synthetic_vqa").glob("predictions-*.jsonl"))
        return bool(logs) and logs[0].read_bytes().count(b"\n") >= QUESTIONS // 2

    run_and_kill(command(killed), halfway, poll=0.2)
    done = len(_predictions(killed))
    assert QUESTIONS // 2 <= done < QUESTIONS
    resumed = subprocess.run(command(killed), env=env(), cwd=ROOT, check=True, capture_output=True, text=True)
    assert f"{done}/{QUESTIONS}" in resumed.stderr  # the progress bar starts where the killed run stopped
    rows = _predictions(killed)
    assert len(rows) == len({r["id"] for r in rows}) == QUESTIONS  # each question answered once
    assert {r["id"]: r["prediction"] for r in rows} == {r["id"]: r["prediction"] for r in _predictions(straight)}
    results = [json.loads((out / "results.json").read_text())["results"]["synthetic_vqa"] for out in (straight, killed)]
    assert results[0]["n"] == QUESTIONS
    assert results[0]["metrics"] == results[1]["metrics"]
