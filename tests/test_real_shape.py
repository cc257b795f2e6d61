"""The paper path at real shape, rehearsed on CPU (marker ``real_shape``; the default run leaves it out):
``python -m pytest -m real_shape tests/test_real_shape.py -s`` (``REAL_SHAPE_PRECISION=no`` for fp32).

LLaVA-1.5's recipe with CLIP ViT-L/14-336 at its true shape (576 tokens per image) and a Qwen2-0.5B-shaped
LLM (random weights written by code, the tiny BPE tokenizer; ~0.8B parameters in all), under DeepSpeed
ZeRO-3 over two CPU processes: align, then instruct killed with SIGKILL after its first checkpoint and
resumed; then instruct again with LoRA on the projector and the LLM. ``vlm merge`` on the ZeRO-3
checkpoints, ``vlm export --to llava``, and transformers' own Llava (in a process that never imports vlm)
must give our logits. Wall time per phase and the peak memory (RSS) of every process are printed, and
written as JSON to ``$REAL_SHAPE_REPORT`` when it is set.
"""

import json
import os
import shutil
import threading
import time
from pathlib import Path

import psutil
import pytest
import torch
from parity import inputs, logits, max_diff, picture, reference
from train_helpers import command, run, run_and_kill, weights
from transformers import AutoModelForImageTextToText

from vlm.cli import main
from vlm.hub import resolve_part
from vlm.published.base import materialize
from vlm.train.merge import stage_of, trained_weights
from vlm.train.stages.base import STAGES

pytestmark = [pytest.mark.real_shape, pytest.mark.timeout(5400)]

MAX_LENGTH = "640"  # 576 image tokens + a short caption or answer
SHORT = [
    "--model.template", "chatml", "--model.image_size", "336",
    "--stages.align.data.n_images", "8", "--stages.align.max_steps", "2", "--stages.align.batch_size", "1",
    "--stages.align.data.max_length", MAX_LENGTH, "--stages.align.save_every", "0", "--stages.align.log_every", "1",
    "--stages.instruct.data.n_images", "8", "--stages.instruct.max_steps", "4", "--stages.instruct.batch_size", "1",
    "--stages.instruct.data.max_length", MAX_LENGTH, "--stages.instruct.save_every", "2",
    "--stages.instruct.log_every", "1", "--stages.instruct.optim.lr", "1e-5",
    "--run.eval_limit", "0", "--run.tracker", "none",
    # bf16: DeepSpeed holds 16-bit weights and fp32 masters. CPUs without native bf16 matmuls (minutes per step
    # at this shape) can run it with REAL_SHAPE_PRECISION=no: fp32, a rank peaks at about 12 GiB, so >= 32 GiB RAM
    "--run.mixed_precision", os.environ.get("REAL_SHAPE_PRECISION", "bf16"),
]
LORA = ["--stages.instruct.train", "vision=frozen,projector=lora,llm=lora", "--stages.instruct.lora.r", "16",
        "--stages.instruct.lora.alpha", "32", "--stages.instruct.max_steps", "2", "--stages.instruct.save_every", "1",
        "--stages.instruct.optim.lr", "1e-4"]


class Report:
    """Wall time per phase and the peak RSS of every process this test starts (sampled twice a second)."""

    def __init__(self):
        self.phases: dict[str, float] = {}
        self.peaks: dict[int, tuple[str, int]] = {}
        self.parity: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            for proc in me.children(recursive=True):
                try:
                    rss = proc.memory_info().rss
                    if rss > self.peaks.get(proc.pid, ("", 0))[1]:
                        self.peaks[proc.pid] = (self._label(proc), rss)
                except psutil.Error:
                    continue
            self._stop.wait(0.5)

    def _label(self, proc: psutil.Process) -> str:
        cmd = " ".join(proc.cmdline())
        rank = proc.environ().get("RANK")
        if rank is not None:
            return f"{self.current} rank {rank}"
        if "accelerate" in cmd:
            return f"{self.current} launcher"
        return f"{self.current} {proc.name()}"

    current = "setup"

    def phase(self, name: str):
        report = self

        class Timer:
            def __enter__(self):
                report.current, self.start = name, time.perf_counter()

            def __exit__(self, *exc):
                report.phases[name] = time.perf_counter() - self.start

        return Timer()

    def close(self) -> dict:
        self._stop.set()
        self._thread.join()
        peaks: dict[str, int] = {}
        for label, rss in self.peaks.values():
            peaks[label] = max(peaks.get(label, 0), rss)
        return {"seconds": self.phases, "peak_rss_gib": {k: round(v / 2**30, 2) for k, v in sorted(peaks.items())},
                "this_process_peak_rss_gib": round(psutil.Process().memory_info().rss / 2**30, 2),
                "parity_max_abs_logit_diff": self.parity}


@pytest.fixture(scope="module")
def report():
    report = Report()
    yield report
    out = report.close()
    text = json.dumps(out, indent=1)
    print("\nreal-shape rehearsal:\n" + text)
    if os.environ.get("REAL_SHAPE_REPORT"):
        Path(os.environ["REAL_SHAPE_REPORT"]).write_text(text)


@pytest.fixture(scope="module")
def parts(tmp_path_factory, report):
    root = tmp_path_factory.mktemp("parts")
    with report.phase("write parts (random weights)"):
        vision = materialize("shape-clip-vit-large-patch14-336", root / "clip-vit-large-patch14-336")
        llm = materialize("shape-qwen2-0.5b", root / "qwen2-0.5b", tokenizer_from=resolve_part("tiny-qwen2"))
    return ["--model.vision", str(vision), "--model.llm", str(llm)]


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, parts, report):
    """align (2 steps) + instruct, full (4 steps): killed once checkpoint-2 exists, then resumed."""
    out = tmp_path_factory.mktemp("runs") / "full"
    args = [*parts, *SHORT]
    with report.phase("run: build + align + instruct until SIGKILL"):
        run_and_kill(command("llava15.py", out, *args, processes=2, zero=3),
                     out / "stages/instruct/checkpoints/checkpoint-2", timeout=3600)
    with report.phase("run: --resume to the end"):
        run(command("llava15.py", out, *args, "--resume", processes=2, zero=3), timeout=3600)
    return out


def test_full_run_resumes_and_is_576_tokens(full_run):
    log = (full_run / "train.log").read_text()
    assert "2 process(es), DistributedType.DEEPSPEED" in log
    assert "stage instruct: resumed from" in log and "checkpoint-2" in log
    config = json.loads((full_run / "model/config.json").read_text())
    assert config["image_seq_length"] == 576 and config["vision_config"]["image_size"] == 336
    rows = [json.loads(x) for x in (full_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["stage"] == "instruct"] == [1, 2, 3, 4]
    model = AutoModelForImageTextToText.from_pretrained(full_run / "model")
    total = sum(p.numel() for p in model.parameters())
    assert 0.79e9 < total < 0.81e9, total


def test_zero3_checkpoint_merges(full_run, tmp_path, report):
    ckpt = full_run / "stages/instruct/checkpoints/checkpoint-2"
    with report.phase("vlm merge (ZeRO-3 checkpoint-2)"):
        assert main(["merge", str(ckpt), "--out", str(tmp_path / "merged")]) == 0
    merged, start = weights(tmp_path / "merged"), weights(full_run / "stages/align/model")
    assert merged.keys() == start.keys()
    changed = [k for k in merged if not torch.equal(merged[k], start[k])]
    assert any(k.startswith("language_model") for k in changed) and not any(k.startswith("vision_tower") for k in changed)


def test_export_matches_plain_transformers(full_run, tmp_path, report):
    image = picture()
    with report.phase("vlm export --to llava (final model)"):
        assert main(["export", str(full_run / "model"), "--to", "llava", "--out", str(tmp_path / "llava")]) == 0
    with report.phase("parity: ours vs transformers' Llava (separate process)"):
        batch = inputs(full_run / "model", image)
        ours = logits(AutoModelForImageTextToText.from_pretrained(full_run / "model"), batch)
        ref = reference(tmp_path / "llava", image, tmp_path / "reference")
    assert torch.equal(ref["input_ids"], batch["input_ids"])
    assert (batch["input_ids"] == json.loads((full_run / "model/config.json").read_text())["image_token_id"]).sum() == 576
    report.parity["full: vlm vs exported Llava"] = max_diff(ref["logits"], ours)
    assert report.parity["full: vlm vs exported Llava"] < 1e-3


def test_lora_run_round_trip(full_run, parts, tmp_path_factory, report):
    """instruct with LoRA on projector + LLM from the same aligned model; its ZeRO-3 checkpoint's adapters
    live, merged by `vlm merge`, reloaded, exported and run by transformers give the same logits."""
    out = tmp_path_factory.mktemp("runs") / "lora"
    (out / "stages/align").mkdir(parents=True)
    (out / "init").symlink_to(full_run / "init", target_is_directory=True)  # align is finished: --resume skips it
    (out / "stages/align/model").symlink_to(full_run / "stages/align/model", target_is_directory=True)
    with report.phase("run: instruct with LoRA (projector + LLM)"):
        run(command("llava15.py", out, *parts, *SHORT, *LORA, "--resume", processes=2, zero=3), timeout=3600)
    assert "stage align: already finished" in (out / "train.log").read_text()
    ckpt = out / "stages/instruct/checkpoints/checkpoint-1"
    work = tmp_path_factory.mktemp("lora-trip")
    image = picture()
    with report.phase("LoRA round trip: live adapters, merge, reload, export, transformers"):
        _, config, start = stage_of(ckpt)
        stage = STAGES.get(config.kind)(config)
        live = stage.prepare(stage.load(start, for_training=False))
        trained = {k.removeprefix("module."): v for k, v in trained_weights(ckpt).items()}
        assert any(k.startswith("projector") and "lora_A" in k for k in trained)
        assert any(k.startswith("language_model") and "lora_B" in k for k in trained)
        live.load_state_dict(trained, strict=False)
        batch = inputs(start, image)
        live_logits = logits(live, batch)
        del live
        assert main(["merge", str(ckpt), "--out", str(work / "merged")]) == 0
        merged_logits = logits(AutoModelForImageTextToText.from_pretrained(work / "merged"), batch)
        assert main(["export", str(work / "merged"), "--to", "llava", "--out", str(work / "llava")]) == 0
        ref = reference(work / "llava", image, work / "reference")
    report.parity["lora: live adapters vs merged"] = max_diff(merged_logits, live_logits)
    report.parity["lora: merged vs exported Llava"] = max_diff(ref["logits"], merged_logits)
    assert torch.equal(ref["input_ids"], batch["input_ids"])
    assert report.parity["lora: live adapters vs merged"] < 1e-3
    assert report.parity["lora: merged vs exported Llava"] < 1e-3
    shutil.rmtree(work, ignore_errors=True)
