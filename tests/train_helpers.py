"""Running recipes as real subprocesses (plain python or `accelerate launch`) for the training tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

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


def env() -> dict[str, str]:
    out = dict(os.environ)
    out.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1",
               TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")
    return out


def command(recipe: str, out: Path, *args: str, processes: int = 0, zero: int = 0) -> list[str]:
    script = [str(ROOT / "recipes" / recipe), "--run.output_dir", str(out), *args]
    if not processes:
        return [sys.executable, *script]
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(processes),
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
              "--main_process_port", str(29500 + os.getpid() % 1000)]
    if zero:
        launch += ["--use_deepspeed", "--zero_stage", str(zero)]
    else:
        launch += ["--cpu", "--multi_gpu"]
    return [*launch, *script]


def run(cmd: list[str], timeout: int = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, env=env(), cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc


def run_and_kill(cmd: list[str], marker: Path, timeout: int = 600) -> None:
    """Start ``cmd`` in its own process group and SIGKILL the whole group once ``marker`` exists."""
    proc = subprocess.Popen(cmd, env=env(), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.time() + timeout
    while not marker.exists():
        assert proc.poll() is None, f"run ended before {marker} appeared:\n{proc.stderr.read()[-4000:]}"
        assert time.time() < deadline, f"{marker} never appeared"
        time.sleep(0.02)
    os.killpg(proc.pid, 9)
    proc.wait()


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
