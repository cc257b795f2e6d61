"""Faults under every sharding engine: one run SIGKILLed at five seeded moments in turn (inside an align
step, between the stages, during a checkpoint write, inside an instruct step, during the final save),
each time resumed, ends bit-identical to the uninterrupted run on the same engine (one process,
ZeRO-3 and FSDP2 with 2 CPU processes).

Marked ``faults`` (about 20 minutes on two quiet cores); run with ``bash scripts/test.sh -m faults``.
The default suite's share: tests/test_train_resume.py (kill mid-stage, a half-written checkpoint, a
corrupted checkpoint and a full disk) and the ZeRO-2 kill in tests/test_train_deepspeed.py.
"""

from __future__ import annotations

import random

import pytest
from train_helpers import QUICK, assert_identical, command, metrics, run, run_and_kill

pytestmark = pytest.mark.faults


@pytest.mark.parametrize("engine", ["single", "zero3", "fsdp"])
def test_sigkill_at_seeded_moments_then_resume_is_bit_identical(engine, tmp_path):
    rng = random.Random(f"faults-{engine}")
    straight, out = tmp_path / "straight", tmp_path / "killed"
    run(command("llava15.py", straight, *QUICK, engine=engine))
    ckpts = out / "stages/instruct/checkpoints"

    def rows(stage: str) -> bool:
        return (out / "metrics.jsonl").is_file() and bool(metrics(out, stage))

    # (what the kill interrupts, when it is due, seconds after that, what the folder shows once killed)
    moments = [
        ("an align step", lambda: rows("align"), rng.uniform(0.0, 0.5),
         lambda: not (out / "stages/align/model").exists()),
        ("the change of stage", (out / "stages/align/model").is_dir, 0.0,
         lambda: not list(ckpts.glob("checkpoint-*"))),
        ("a checkpoint write", lambda: any(ckpts.glob(".tmp-checkpoint-*")), 0.0,
         lambda: any(ckpts.glob(".tmp-checkpoint-*"))),
        ("an instruct step", (ckpts / "checkpoint-6").is_dir, rng.uniform(0.0, 1.5),
         lambda: not (out / "model").exists()),
        ("the final save", (out / ".tmp-model").exists, 0.0,
         lambda: (out / ".tmp-model").exists() and not (out / "model").exists()),
    ]
    for i, (what, due, delay, left) in enumerate(moments):
        run_and_kill(command("llava15.py", out, *QUICK, *(["--resume"] if i else []), engine=engine), due,
                     delay=delay)
        assert left(), f"the kill meant for {what} did not land there"
    run(command("llava15.py", out, *QUICK, "--resume", engine=engine))
    assert_identical(straight / "model", out / "model")
    assert [r["loss"] for r in metrics(out)] == [r["loss"] for r in metrics(straight)]
