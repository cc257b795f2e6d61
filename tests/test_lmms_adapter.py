"""The lmms-eval adapter, run offline by lmms-eval itself (`--model vlm`, found through our entry point)
on local parquet tasks: its replies equal our runner's, and its option losses equal our likelihoods."""

import json
import os
import subprocess
import sys
from pathlib import Path

import lmms_eval
import pytest
from transformers import AutoModelForImageTextToText, AutoProcessor

from vlm.eval.likelihood import continuation_logprobs
from vlm.eval.runner import EvalSettings, evaluate
from vlm.eval.task import get_task

LIMIT = 4
UTILS = """
def doc_to_visual(doc):
    return [doc["image"].convert("RGB")]


def doc_to_text(doc):
    return doc["question"]
"""


@pytest.fixture(scope="module")
def pope_parquet() -> Path:
    task = get_task("synthetic_pope")
    return task.default_data()


def _lmms_eval(model: Path, task: str, include: Path, out: Path) -> list[dict]:
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HOME": str(out / "hf"),
        "TOKENIZERS_PARALLELISM": "false",
    }
    command = [sys.executable, "-m", "lmms_eval", "--model", "vlm", "--model_args", f"pretrained={model}"]
    command += ["--batch_size", "2", "--tasks", task, "--include_path", str(include), "--limit", str(LIMIT)]
    command += ["--output_path", str(out), "--log_samples"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    found = list(out.rglob(f"*_samples_{task}.jsonl"))  # lmms-eval exits 0 even when a task fails
    assert len(found) == 1, done.stdout[-3000:] + done.stderr[-3000:]
    (samples,) = found
    rows = [json.loads(line) for line in samples.read_text().splitlines()]
    assert len(rows) == LIMIT
    return sorted(rows, key=lambda r: r["doc_id"])


def test_lmms_eval_generates_what_our_runner_generates(built_models, pope_parquet, tmp_path):
    """lmms-eval's own POPE task (prompt, post-prompt, 128 new tokens) over our parquet file."""
    model = built_models("tiny-clip", "mlp2x_gelu", "tiny-llama")
    pope_yaml = Path(lmms_eval.__file__).parent / "tasks" / "pope" / "pope.yaml"
    parquet = next(pope_parquet.glob("*.parquet"))
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "vlm_test_pope.yaml").write_text(
        f"include: {pope_yaml}\ntask: vlm_test_pope\ndataset_path: parquet\n"
        f"dataset_kwargs:\n  data_files:\n    test: {parquet}\ntest_split: test\n"
    )
    rows = _lmms_eval(model, "vlm_test_pope", tmp_path / "tasks", tmp_path / "lmms")

    ours = evaluate(
        EvalSettings(
            str(model),
            ["pope"],
            data={"pope": str(pope_parquet)},
            limit=LIMIT,
            max_new_tokens=128,
            out=str(tmp_path / "ours"),
        )
    )["results"]["pope"]
    replies = [json.loads(line)["prediction"] for line in Path(ours["predictions"]).read_text().splitlines()]
    assert [
        r["filtered_resps"][0] if isinstance(r["filtered_resps"], list) else r["filtered_resps"] for r in rows
    ] == replies


def test_lmms_eval_loglikelihood_matches_ours(built_models, pope_parquet, tmp_path):
    """A local multiple-choice task (yes/no as options): lmms-eval's per-option losses are our negated
    summed log-probabilities of " yes" / " no" after the question."""
    model = built_models("tiny-clip", "mlp2x_gelu", "tiny-llama")
    parquet = next(pope_parquet.glob("*.parquet"))
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "utils.py").write_text(UTILS)
    (tasks / "vlm_test_choice.yaml").write_text(
        "task: vlm_test_choice\ndataset_path: parquet\n"
        f"dataset_kwargs:\n  data_files:\n    test: {parquet}\ntest_split: test\n"
        "output_type: multiple_choice\ndoc_to_visual: !function utils.doc_to_visual\n"
        "doc_to_text: !function utils.doc_to_text\ndoc_to_choice: ['yes', 'no']\n"
        "doc_to_target: answer\nmetric_list:\n  - metric: acc\n"
    )
    rows = _lmms_eval(model, "vlm_test_choice", tasks, tmp_path / "lmms")

    vlm_model, processor = (
        AutoModelForImageTextToText.from_pretrained(model),
        AutoProcessor.from_pretrained(model),
    )
    task = get_task("pope")
    for row, sample in zip(rows, task.read(pope_parquet)[:LIMIT], strict=True):
        image = sample.images[0].load(sample.id)
        messages = [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": sample.question}]}
        ]
        ours = continuation_logprobs(vlm_model, processor, messages, [image], [" yes", " no"])
        losses = [float(loss) for loss, _ in row["filtered_resps"]]  # the log holds them as strings
        assert losses == pytest.approx([-v for v in ours], rel=1e-4)
