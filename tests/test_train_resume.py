"""Exact resume: a run SIGKILLed mid-stage and resumed ends bit-identical to an uninterrupted run."""

import json
import resource
import subprocess
import sys

import pytest
import torch
from train_helpers import QUICK, assert_identical, command, env, run, run_and_kill, weights
from transformers import AutoModelForImageTextToText

import vlm  # noqa: F401


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("straight")
    run(command("llava15.py", out, *QUICK))
    return out


def test_sigkill_then_resume_is_bit_identical(uninterrupted, tmp_path):
    out = tmp_path / "killed"
    run_and_kill(command("llava15.py", out, *QUICK), out / "stages/instruct/checkpoints/checkpoint-3")
    assert not (out / "model").exists()
    run(command("llava15.py", out, *QUICK, "--resume"))
    assert_identical(uninterrupted / "model", out / "model")
    # the resumed run's metrics continue the interrupted ones without duplicated steps
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows if r["stage"] == "instruct"]
    assert steps == sorted(set(steps)) == [2, 4, 6, 8, 10, 12]
    straight = [json.loads(x) for x in (uninterrupted / "metrics.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in rows] == [r["loss"] for r in straight]


def test_kill_during_checkpoint_write_keeps_previous(uninterrupted, tmp_path):
    """A checkpoint is only used once complete: a half-written one (as a kill mid-write leaves it)
    is ignored and cleaned, and the run resumes from the previous checkpoint, still exactly."""
    out = tmp_path / "partial"
    ckpts = out / "stages/instruct/checkpoints"
    run_and_kill(command("llava15.py", out, *QUICK), ckpts / "checkpoint-3")
    complete = sorted(p.name for p in ckpts.glob("checkpoint-*") if (p / "trainer_state.json").exists())
    # what a kill inside save_checkpoint leaves: the temporary folder, weights half written
    half = ckpts / ".tmp-checkpoint-99"
    half.mkdir()
    (half / "model.safetensors").write_bytes(b"\x00" * 100)
    run(command("llava15.py", out, *QUICK, "--resume"))
    assert complete, "the first run made no complete checkpoint"
    assert not half.exists()
    assert_identical(uninterrupted / "model", out / "model")


def test_run_folder_contents(uninterrupted):
    out = uninterrupted
    for name in ("config.yaml", "train.log", "metrics.jsonl", "loss.png", "init", "model"):
        assert (out / name).exists(), name
    assert (out / "loss.png").read_bytes()[:4] == b"\x89PNG"
    assert "stage instruct" in (out / "train.log").read_text()
    kept = sorted((out / "stages/instruct/checkpoints").glob("checkpoint-*"))
    assert [p.name for p in kept] == ["checkpoint-6", "checkpoint-9"]  # keep_last=2, none at the end
    assert not list((out / "stages/align/checkpoints").glob("checkpoint-*"))  # save_every 200 > its 4 steps
    # checkpoints hold trainable weights only: instruct trains projector + LLM, never the frozen vision tower
    instruct_weights = weights(kept[-1])
    assert instruct_weights and not any(k.startswith("vision_tower") for k in instruct_weights)
    assert not (out / "stages/instruct/model").exists()  # the last stage writes RUN/model, no second copy


def test_existing_run_needs_resume_flag(uninterrupted):
    proc = subprocess.run(command("llava15.py", uninterrupted, *QUICK), env=env(), capture_output=True, text=True)
    assert proc.returncode != 0
    assert "--resume" in proc.stderr


def test_lora_stage_merges_and_checkpoints_merge(tmp_path):
    out = tmp_path / "lora"
    lora = ["--stages.instruct.train", "projector=full,llm=lora", "--stages.instruct.lora.r", "4",
            "--stages.instruct.lora.alpha", "8"]
    run(command("llava15.py", out, *QUICK, *lora))
    final, start = weights(out / "model"), weights(out / "stages/align/model")
    assert final.keys() == start.keys()  # merged: a plain model, no adapter tensors left
    changed = [k for k in final if not torch.equal(final[k], start[k])]
    assert any("q_proj" in k for k in changed) and not any("vision_tower" in k for k in changed)
    ckpt = out / "stages/instruct/checkpoints/checkpoint-9"
    assert any("lora_A" in k for k in weights(ckpt))  # the checkpoint keeps adapters, not merged weights
    merged = tmp_path / "merged"
    subprocess.run([sys.executable, "-m", "vlm.cli", "merge", str(ckpt), "--out", str(merged)], check=True, env=env())
    model = AutoModelForImageTextToText.from_pretrained(merged)
    assert set(model.state_dict()) >= set(start)


def _limit_file_size(limit: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_corrupt_checkpoint_falls_back_and_a_full_disk_keeps_the_previous(uninterrupted, tmp_path):
    """A checkpoint whose file no longer matches the checksum it was written with is named in the log,
    set aside, and the previous one is used; a checkpoint write that hits a file-size limit (what a full
    disk does) stops the run with a clear message and leaves the previous checkpoint as it was; the run
    then still ends bit-identical."""
    out = tmp_path / "faulty"
    ckpts = out / "stages/instruct/checkpoints"
    run_and_kill(command("llava15.py", out, *QUICK), ckpts / "checkpoint-6" / "trainer_state.json")
    victim = ckpts / "checkpoint-6" / "model.safetensors"
    data = bytearray(victim.read_bytes())
    data[-64:] = bytes(64) if any(data[-64:]) else b"\x01" * 64  # same size, other bytes
    victim.write_bytes(bytes(data))
    before = {p.name: p.read_bytes() for p in (ckpts / "checkpoint-3").iterdir()}
    # 256 KiB: the logs fit, the next checkpoint's weights (about 1 MB) do not
    proc = subprocess.run(command("llava15.py", out, *QUICK, "--resume"), env=env(), capture_output=True, text=True,
                          preexec_fn=_limit_file_size(256 * 1024))
    assert proc.returncode == 1, proc.stderr[-3000:]
    message = proc.stderr.strip().splitlines()[-1]
    assert message.startswith(f"error: could not write checkpoint {ckpts / 'checkpoint-6'}: the disk is full or a "
                              "file-size limit was reached"), message
    assert "the previous checkpoint checkpoint-3 is intact" in message
    log = (out / "train.log").read_text()
    assert f"{victim} is corrupted" in log and "falling back to the previous checkpoint" in log
    assert f"resumed from {ckpts / 'checkpoint-3'}" in log
    assert (ckpts / "checkpoint-6.unusable").is_dir() and not list(ckpts.glob(".tmp-*"))
    assert {p.name: p.read_bytes() for p in (ckpts / "checkpoint-3").iterdir()} == before
    run(command("llava15.py", out, *QUICK, "--resume"))
    assert_identical(uninterrupted / "model", out / "model")
