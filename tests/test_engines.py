"""One standard for every launch mode: with the same global batch and seed, one process, DDP, FSDP2,
ZeRO-2, ZeRO-3 and ZeRO-3 with CPU offload (2 CPU processes each) train the same model over the 20
steps of a two-stage recipe, with and without gradient accumulation; LoRA under FSDP and `vlm merge`
of an FSDP checkpoint; two machines on one host train what one machine with two processes trains.

Marked ``engines`` (about 25 minutes on two quiet cores); run with ``bash scripts/test.sh -m engines``.
The table lands in tests/artifacts/engine_matrix.md.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from train_helpers import (
    MATRIX,
    QUICK,
    ROOT,
    command,
    env,
    loss_deviation,
    port,
    run,
    split_batch,
    weight_deviation,
    weights,
)

pytestmark = pytest.mark.engines

# fp32 on CPU: engines differ only in summation order (gradient all-reduce vs reduce-scatter, padding per
# micro-batch), about 1e-7 relative per step; these bounds leave two orders of magnitude for 20 steps.
LOSS_RTOL = 1e-4  # per logged step, relative
WEIGHT_ATOL = 1e-4  # any final weight, absolute (weights are O(0.1..1))
KIND = {"single": "1 process(es), DistributedType.NO", "ddp": "2 process(es), DistributedType.MULTI_CPU",
        "fsdp": "2 process(es), DistributedType.FSDP", "zero2": "2 process(es), DistributedType.DEEPSPEED",
        "zero3": "2 process(es), DistributedType.DEEPSPEED", "zero3_offload": "2 process(es), DistributedType.DEEPSPEED"}
ARTIFACTS = Path(__file__).parent / "artifacts"


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """The matrix run of (engine, accumulation), trained once per session."""
    root = tmp_path_factory.mktemp("engines")
    done: dict[tuple[str, int], Path] = {}

    def get(engine: str, accum: int = 1) -> Path:
        if (engine, accum) not in done:
            out = root / f"{engine}-{accum}"
            run(command("llava15.py", out, *MATRIX, *split_batch(engine, accum), engine=engine), timeout=1200)
            assert KIND[engine] in (out / "train.log").read_text()
            done[engine, accum] = out
        return done[engine, accum]

    return get


@pytest.fixture(scope="session")
def table():
    rows: list[str] = []
    yield rows
    if rows:
        ARTIFACTS.mkdir(exist_ok=True)
        head = ["| engine | accumulation | per-process batch | max relative loss deviation | max weight deviation |",
                "|---|---|---|---|---|"]
        (ARTIFACTS / "engine_matrix.md").write_text("\n".join(head + sorted(rows)) + "\n")


@pytest.mark.parametrize("accum", [1, 2])
@pytest.mark.parametrize("engine", list(KIND))
def test_every_engine_trains_the_same_model(engine, accum, trained, table):
    reference = trained("single", 1)
    out = trained(engine, accum)
    loss, weight = loss_deviation(out, reference), weight_deviation(out / "model", reference / "model")
    per = split_batch(engine, accum)[1]
    table.append(f"| {engine} | {accum} | {per} | {loss:.1e} | {weight:.1e} |")
    assert loss <= LOSS_RTOL and weight <= WEIGHT_ATOL, (loss, weight)


LORA = ["--stages.instruct.train", "projector=full,llm=lora", "--stages.instruct.lora.r", "4",
        "--stages.instruct.lora.alpha", "8", "--stages.instruct.lora.dropout", "0"]


def test_lora_under_fsdp_and_merging_its_sharded_checkpoint(tmp_path):
    """LoRA adapters (frozen base weights in the same FSDP units) train as in one process; `vlm merge`
    turns the FSDP checkpoint into the same plain model the one-process checkpoint merges into."""
    outs = {}
    for engine in ("single", "fsdp"):
        outs[engine] = tmp_path / engine
        run(command("llava15.py", outs[engine], *QUICK, *LORA, *split_batch(engine, 1), engine=engine), timeout=900)
    fsdp_ckpt = outs["fsdp"] / "stages/instruct/checkpoints/checkpoint-9"
    assert (fsdp_ckpt / "sharded" / ".metadata").is_file() and not (fsdp_ckpt / "model.safetensors").exists()
    assert weight_deviation(outs["fsdp"] / "model", outs["single"] / "model") <= WEIGHT_ATOL
    merged = {}
    for engine, out in outs.items():
        merged[engine] = tmp_path / f"merged-{engine}"
        subprocess.run([sys.executable, "-m", "vlm.cli", "merge", str(out / "stages/instruct/checkpoints/checkpoint-9"),
                        "--out", str(merged[engine])], check=True, env=env(), cwd=ROOT)
    assert weights(merged["fsdp"]).keys() == weights(outs["single"] / "model").keys()
    assert weight_deviation(merged["fsdp"], merged["single"]) <= WEIGHT_ATOL


MULTI_NODE = {"zero3": "recipes/accelerate/multi_node.yaml", "fsdp": "recipes/accelerate/multi_node_fsdp.yaml"}


@pytest.mark.parametrize("engine", list(MULTI_NODE))
def test_two_machines_on_one_host_train_what_one_machine_trains(engine, trained, tmp_path):
    """The multi-node config as two machines (ranks 0 and 1 over 127.0.0.1, one process each)."""
    out = tmp_path / "two-machines"
    script = [str(ROOT / "recipes/llava15.py"), "--run.output_dir", str(out), *MATRIX, *split_batch(engine, 1)]
    logs, rendezvous = [tmp_path / f"machine-{rank}.log" for rank in (0, 1)], str(port())
    machines = [
        subprocess.Popen(
            [sys.executable, "-m", "accelerate.commands.launch", "--config_file", MULTI_NODE[engine],
             "--num_machines", "2", "--num_processes", "2", "--machine_rank", str(rank),
             "--main_process_ip", "127.0.0.1", "--main_process_port", rendezvous, "--mixed_precision", "no",
             "--dynamo_backend", "no", *script],
            env=env(), cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT)  # files: a full pipe would stall
        for rank, log in enumerate(logs)
    ]
    for rank, (machine, log) in enumerate(zip(machines, logs, strict=True)):
        assert machine.wait(timeout=1200) == 0, f"machine {rank} failed:\n{log.read_text()[-6000:]}"
    assert KIND[engine] in (out / "train.log").read_text()
    one_machine = trained(engine, 1)
    assert loss_deviation(out, one_machine) <= LOSS_RTOL
    assert weight_deviation(out / "model", one_machine / "model") <= WEIGHT_ATOL
