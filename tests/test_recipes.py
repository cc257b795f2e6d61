"""Every recipe runs end to end on its embedded default (shortened here), and its paper preset
fails at once, offline, saying what it looked for."""

import json
import subprocess

import pytest
from train_helpers import command, env, run

SHORT = {
    "llava_convnext.py": ["align", "pretrain", "instruct"],
    "llava15.py": ["align", "instruct"],
    "prismatic.py": ["finetune"],
}


# the self-trained encoder takes minutes to build once; its random twin exercises the same code here
FAST_PARTS = {"llava_convnext.py": ["--model.vision", "tiny-convnext"]}


@pytest.mark.parametrize("recipe", sorted(SHORT))
def test_embedded_default_runs_end_to_end(recipe, tmp_path):
    args = ["--run.eval_limit", "6", "--run.tracker", "tensorboard", *FAST_PARTS.get(recipe, [])]
    for stage in SHORT[recipe]:
        args += [f"--stages.{stage}.data.n_images", "48", f"--stages.{stage}.max_steps", "3"]
    proc = run(command(recipe, tmp_path, *args))
    log = (tmp_path / "train.log").read_text()
    assert "held-out evaluation (synthetic_vqa, synthetic_pope)" in log and "| synthetic_vqa | accuracy |" in log
    results = json.loads((tmp_path / "eval.json").read_text())["results"]
    assert results["synthetic_vqa"]["n"] == results["synthetic_pope"]["n"] == 6
    assert set(results["synthetic_vqa"]["breakdown"]) >= {"shape", "count", "existence"}
    assert list((tmp_path / "logs").rglob("events.out.tfevents.*")), "no TensorBoard events"
    for stage in SHORT[recipe]:
        assert f"stage {stage}" in log
    phases = next(line for line in log.splitlines() if "wall time per phase:" in line)
    assert all(f"stage {stage} " in phases for stage in SHORT[recipe]) and "evaluation" in phases and "total" in phases
    assert "final model" in proc.stderr + proc.stdout + log


@pytest.mark.parametrize("recipe", sorted(SHORT))
def test_paper_preset_fails_fast_offline(recipe, tmp_path):
    proc = subprocess.run(command(recipe, tmp_path, "--preset", "paper"), env=env(), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode != 0
    assert "Nothing is downloaded at run time" in proc.stderr and "data/README.md" in proc.stderr


def test_paper_preset_with_data_names_the_missing_weights(tmp_path):
    corpus = tmp_path / "llava"
    (corpus / "images").mkdir(parents=True)
    for name in ("blip_laion_cc_sbu_558k.json", "llava_v1_5_mix665k.json"):
        (corpus / name).write_text("[]")
    args = ["--preset", "paper"]
    for stage, name in (("align", "blip_laion_cc_sbu_558k.json"), ("instruct", "llava_v1_5_mix665k.json")):
        args += [f"--stages.{stage}.data.source", "llava_json", f"--stages.{stage}.data.path", str(corpus / name),
                 f"--stages.{stage}.data.image_root", str(corpus / "images")]
    proc = subprocess.run(command("llava15.py", tmp_path / "run", *args), env=env(), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode != 0
    assert "openai/clip-vit-large-patch14-336" in proc.stderr
