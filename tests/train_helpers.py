"""Running recipes as real subprocesses (plain python or `accelerate launch`) for the training tests."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
# A short two-stage llava15 run on the synthetic world: a few seconds per stage on CPU.
QUICK = [
    "--stages.align.data.n_images", "40", "--stages.align.max_steps", "4",
    "--stages.instruct.data.n_images", "60", "--stages.instruct.max_steps", "12",
    "--stages.instruct.optim.lr", "2e-3",  # fixed here so the tests do not follow the recipe's default
    "--stages.instruct.save_every", "3", "--stages.instruct.keep_last", "2",
    "--stages.instruct.log_every", "2", "--stages.align.log_every", "2",
    "--run.eval_limit", "0", "--run.tracker", "none",
]


# The engine matrix: two stages, 20 optimizer steps, a loss row after every step, no checkpoints.
MATRIX = [
    "--stages.align.data.n_images", "48", "--stages.align.max_steps", "6",
    "--stages.instruct.data.n_images", "60", "--stages.instruct.max_steps", "14",
    "--stages.instruct.optim.lr", "2e-3", "--stages.align.log_every", "1", "--stages.instruct.log_every", "1",
    "--run.eval_limit", "0", "--run.tracker", "none",
]
GLOBAL_BATCH = 16


def split_batch(engine: str, accum: int) -> list[str]:
    """Per-process batch and accumulation that make `GLOBAL_BATCH` for ``engine`` (1 or 2 processes)."""
    per = GLOBAL_BATCH // accum // (1 if engine == "single" else 2)
    return [x for s in ("align", "instruct") for x in (f"--stages.{s}.batch_size", str(per),
                                                        f"--stages.{s}.grad_accum", str(accum))]


def metrics(out: Path, stage: str | None = None) -> list[dict]:
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if stage is None or r["stage"] == stage]


def loss_deviation(run: Path, reference: Path) -> float:
    """Largest relative difference of the per-step losses of two runs (which must log the same steps)."""
    a, b = metrics(run), metrics(reference)
    assert [(r["stage"], r["step"]) for r in a] == [(r["stage"], r["step"]) for r in b]
    return max(abs(x["loss"] - y["loss"]) / abs(y["loss"]) for x, y in zip(a, b, strict=True))


def weight_deviation(a: Path, b: Path) -> float:
    """Largest absolute difference of any weight of two model folders."""
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    return max(float((wa[k].double() - wb[k].double()).abs().max()) for k in wa)


def env() -> dict[str, str]:
    out = dict(os.environ)
    out.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1",
               TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")
    return out


# How each engine is launched on this machine (2 CPU processes over gloo, except "single": plain python).
ENGINES: dict[str, list[str]] = {
    "single": [],
    "ddp": ["--multi_gpu", "--num_processes", "2"],
    "fsdp": ["--config_file", "recipes/accelerate/fsdp_cpu.yaml"],
    "zero2": ["--use_deepspeed", "--deepspeed_config_file", "recipes/deepspeed/zero2.json", "--num_processes", "2"],
    "zero3": ["--use_deepspeed", "--deepspeed_config_file", "recipes/deepspeed/zero3.json", "--num_processes", "2"],
    "zero3_offload": ["--use_deepspeed", "--deepspeed_config_file", "recipes/deepspeed/zero3_offload.json",
                      "--num_processes", "2"],
}


def port() -> int:
    return 29500 + os.getpid() % 1000


def command(recipe: str, out: Path, *args: str, processes: int = 0, zero: int = 0, engine: str = "") -> list[str]:
    """``recipe`` run into ``out``: plain python, or `accelerate launch` with ``engine`` (a key of `ENGINES`),
    or with ``processes`` (DeepSpeed ZeRO stage ``zero`` when given, else DDP)."""
    script = [str(ROOT / "recipes" / recipe), "--run.output_dir", str(out), *args]
    if engine:
        if engine == "single":
            return [sys.executable, *script]
        launch = ENGINES[engine]
    elif not processes:
        return [sys.executable, *script]
    elif zero:
        launch = ["--num_processes", str(processes), "--use_deepspeed", "--zero_stage", str(zero)]
    else:
        launch = ["--num_processes", str(processes), "--multi_gpu"]
    return [sys.executable, "-m", "accelerate.commands.launch", *launch, "--num_machines", "1", "--mixed_precision",
            "no", "--dynamo_backend", "no", "--main_process_port", str(port()), *script]


def run(cmd: list[str], timeout: int = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, env=env(), cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc


def run_and_kill(cmd: list[str], marker: Path | Callable[[], bool], timeout: int = 600, delay: float = 0.0,
                 poll: float = 0.005) -> None:
    """Start ``cmd`` in its own process group and SIGKILL the whole group once ``marker`` exists (or
    returns true; looked at every ``poll`` seconds), ``delay`` seconds later. Fails if the run ends
    before that."""
    seen = marker if callable(marker) else marker.exists
    with tempfile.TemporaryFile("w+") as stderr:  # a file, not a pipe: a chatty run never blocks on it
        proc = subprocess.Popen(cmd, env=env(), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr,
                                start_new_session=True)

        def tail() -> str:
            stderr.seek(0)
            return stderr.read()[-4000:]

        deadline = time.time() + timeout
        while not seen():
            assert proc.poll() is None, f"run ended before {marker} appeared:\n{tail()}"
            assert time.time() < deadline, f"{marker} never appeared"
            time.sleep(poll)
        if delay:
            time.sleep(delay)
            assert proc.poll() is None, f"run ended within {delay:.2f}s after {marker}:\n{tail()}"
        kill_tree(proc)


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL a launched run and every process under it: launchers may start their workers in sessions
    of their own, which a kill of the launcher's process group would miss."""
    workers = psutil.Process(proc.pid).children(recursive=True)
    os.killpg(proc.pid, 9)
    for worker in workers:
        with contextlib.suppress(psutil.NoSuchProcess):
            worker.kill()
    proc.wait()
    psutil.wait_procs(workers, timeout=30)


def weights(model_dir: Path) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for shard in sorted(model_dir.glob("*.safetensors")):
        out.update(load_file(shard))
    return out


def assert_identical(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    different = [k for k in wa if not torch.equal(wa[k], wb[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


def synthetic_corpus(out: Path, n: int, size: int = 64, tasks: tuple[str, ...] = ("vqa",)) -> dict[str, Path]:
    """The shapes world as a LLaVA corpus on disk (what `vlm data synth` writes): task -> its JSON file."""
    from vlm.data.export import write_llava
    from vlm.data.registry import open_source
    from vlm.train.config import DataConfig

    paths = {}
    for task in tasks:
        source = open_source(DataConfig(tasks=[task], n_images=n, image_size=size))
        paths[task] = write_llava([source[i] for i in range(len(source))], out, task)
    return paths
