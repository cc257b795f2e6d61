"""DeepSpeed for real: 2 CPU processes over gloo, launched with `accelerate launch`."""

import json
import subprocess
import sys

import pytest
import torch
from train_helpers import QUICK, ROOT, assert_identical, command, env, port, run, run_and_kill
from transformers import AutoModelForImageTextToText, AutoProcessor

import vlm  # noqa: F401


def _losses(out, stage):
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if r["stage"] == stage]


def _loads_and_generates(model_dir):
    model = AutoModelForImageTextToText.from_pretrained(model_dir)
    processor = AutoProcessor.from_pretrained(model_dir)
    from vlm.shapes.world import SyntheticWorld

    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What colour is it?"}]}]
    inputs = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True,
                                           return_tensors="pt", images=[SyntheticWorld("test").image(0)])
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert out.shape[1] > inputs["input_ids"].shape[1]


@pytest.mark.parametrize("zero", [2, 3])
def test_zero_two_processes_learns_and_loads(zero, tmp_path):
    out = tmp_path / f"zero{zero}"
    evaluate = ["--run.eval_limit", "4"] if zero == 3 else []  # the main process evaluates once the others have left
    proc = run(command("llava15.py", out, *QUICK, *evaluate, processes=2, zero=zero), timeout=300)
    assert "2 process(es), DistributedType.DEEPSPEED" in (out / "train.log").read_text(), proc.stderr[-2000:]
    losses = _losses(out, "instruct")
    assert losses[-1] < losses[0] - 0.5, losses
    _loads_and_generates(out / "model")
    if evaluate:
        assert json.loads((out / "eval.json").read_text())["results"]["synthetic_vqa"]["n"] == 4


def test_zero2_sigkill_then_resume_is_bit_identical(tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    run(command("llava15.py", straight, *QUICK, processes=2, zero=2))
    run_and_kill(command("llava15.py", killed, *QUICK, processes=2, zero=2),
                 killed / "stages/instruct/checkpoints/checkpoint-3")
    run(command("llava15.py", killed, *QUICK, "--resume", processes=2, zero=2))
    assert "resumed from" in (killed / "train.log").read_text()
    assert_identical(straight / "model", killed / "model")
    assert _losses(straight, "instruct") == _losses(killed, "instruct")


ZERO_INIT_THEN_PLAIN = """
import gc, os, sys
import torch
os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=sys.argv[2], RANK="0", WORLD_SIZE="1", LOCAL_RANK="0")
torch.distributed.init_process_group("gloo")
from transformers.integrations import HfDeepSpeedConfig
from vlm.modeling import VLMForConditionalGeneration
assert "transformers.models.llama.modeling_llama" not in sys.modules
ds = HfDeepSpeedConfig({"train_micro_batch_size_per_gpu": 1, "zero_optimization": {"stage": 3}})
VLMForConditionalGeneration.from_pretrained(sys.argv[1])  # built inside zero.Init, the LLM's code imported first here
del ds
gc.collect()
model = VLMForConditionalGeneration.from_pretrained(sys.argv[1])
with torch.no_grad():
    model(input_ids=torch.tensor([[1, 2, 3]]))
torch.distributed.destroy_process_group()
"""


def test_a_model_built_after_a_zero3_load_still_runs(built_models):
    """Loading under ZeRO-3 first imports the LLM's modeling code inside zero.Init, which restores each
    class's ``__init__`` as it was at definition on exit; the LLM's code is imported before, so class
    decorators applied after definition (transformers' hub-kernel attention) survive for later models."""
    proc = subprocess.run([sys.executable, "-c", ZERO_INIT_THEN_PLAIN, str(built_models()), str(port())],
                          env=env(), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
