"""A recipe on a LLaVA-format corpus with broken samples: skipped and counted, or fatal in strict mode."""

import json
import subprocess

import pytest
from train_helpers import QUICK, command, env, run, synthetic_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    paths = synthetic_corpus(root, 40, size=64, tasks=("caption", "vqa"))
    captions = json.loads(paths["caption"].read_text())  # one per scene: scene k's image is captions[k]["image"]
    (root / captions[3]["image"]).unlink()  # missing image
    (root / captions[5]["image"]).write_bytes(b"not a png")  # corrupt image
    records = json.loads(paths["vqa"].read_text())
    records[0]["conversations"] = [{"from": "human", "value": "<image>\nno answer"}]  # malformed
    paths["vqa"].write_text(json.dumps(records))
    return root, paths


def _args(root, paths):
    data = []
    for stage, task in (("align", "caption"), ("instruct", "vqa")):
        data += [f"--stages.{stage}.data.source", "llava_json", f"--stages.{stage}.data.path", str(paths[task]),
                 f"--stages.{stage}.data.image_root", str(root)]
    return [*QUICK, *data]


def test_bad_samples_are_skipped_and_counted(corpus, tmp_path):
    root, paths = corpus
    out = tmp_path / "run"
    run(command("llava15.py", out, *_args(root, paths), "--stages.instruct.max_steps", "30"))
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["stage"] == "instruct" and rows[-1]["step"] == 30  # trained to the end regardless
    assert rows[-1]["bad_samples"] > 0
    log = (out / "train.log").read_text()
    assert "bad samples skipped" in log and "missing_image" in log and "corrupt_image" in log
    assert (out / "model").is_dir()


def test_strict_mode_stops_at_the_first_bad_sample(corpus, tmp_path):
    root, paths = corpus
    proc = subprocess.run(command("llava15.py", tmp_path / "strict", *_args(root, paths), "--run.strict"),
                          env=env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0
    assert "vlm.data.errors.BadSample: bad sample" in proc.stderr
    assert "(missing_image)" in proc.stderr or "(corrupt_image)" in proc.stderr
