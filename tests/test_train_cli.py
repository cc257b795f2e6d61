"""`vlm train`: list, help, print the resolved config, re-run a saved config, and clear errors (exit 2, no
traceback); studies as data."""

import json
import subprocess
import sys

import pytest
import yaml
from train_helpers import env

from vlm.cli import main
from vlm.studies.base import STUDIES, Arm, Claim, Study, write_report


def test_list_and_help(capsys):
    assert main(["train", "--list"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in ("llava15", "llava_convnext", "prismatic", "povid", "locality_alignment"))
    assert main(["train", "llava15", "--help"]) == 0
    text = capsys.readouterr().out
    assert "--preset paper" in text and "--preset paper-lora" in text and "--stages.instruct.lora.r 16" in text
    assert "align" in text and "instruct" in text


def test_print_config_then_rerun_it_with_overrides(tmp_path, capsys):
    assert main(["train", "llava15", "--preset", "paper-lora", "--stages.instruct.lora.r", "16", "--print-config"]) == 0
    config = yaml.safe_load(capsys.readouterr().out)
    instruct = {s["name"]: s for s in config["stages"]}["instruct"]
    assert instruct["options"]["lora"]["r"] == 16 and config["model"]["llm"] == "lmsys/vicuna-7b-v1.5"
    saved = tmp_path / "config.yaml"
    saved.write_text(yaml.safe_dump(config, sort_keys=False))
    assert main(["train", "--config", str(saved), "--seed", "3", "--print-config"]) == 0
    again = yaml.safe_load(capsys.readouterr().out)
    assert again["run"]["seed"] == 3 and {s["name"]: s for s in again["stages"]}["instruct"]["options"]["lora"]["r"] == 16


def test_unknown_field_names_the_closest_and_exits_2_without_traceback():
    proc = subprocess.run([sys.executable, "-m", "vlm.cli", "train", "llava15", "--stages.instruct.optim.lrr", "1"],
                          env=env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "no field 'lrr' (did you mean lr" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "vlm.cli", "train", "llava16"], env=env(), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2 and "did you mean 'llava15'" in proc.stderr and "Traceback" not in proc.stderr


def test_study_arms_name_earlier_results_and_report_their_scores(tmp_path):
    study = Study("s", (Arm("a", "locality_alignment"), Arm("b", "llava15", ("--model.vision", "{a}"))),
                  {"VQA": "synthetic_vqa/accuracy", "spatial": "synthetic_vqa/spatial/accuracy"},
                  claims=(Claim("b beats a on VQA", "b", "a", "VQA"),))
    assert study.arm_args(study.arms[1], tmp_path, seed=2) == [
        "--model.vision", str(tmp_path / "a" / "seed-2" / "model"), "--seed", "2",
        "--run.output_dir", str(tmp_path / "b" / "seed-2")]
    for arm, vqa in (("a", (0.40, 0.42, 0.44)), ("b", (0.50, 0.53, 0.53))):
        for seed, accuracy in enumerate(vqa):
            folder = tmp_path / arm / f"seed-{seed}"
            folder.mkdir(parents=True)
            results = {"synthetic_vqa": {"metrics": {"accuracy": accuracy}, "breakdown": {"spatial": {"accuracy": 0.25}}}}
            (folder / "eval.json").write_text(json.dumps({"results": results}))
    summary = write_report(study, tmp_path, (0, 1, 2))
    # b - a per seed: 0.10, 0.11, 0.09; mean 0.10, sd 0.01, half width 4.303 x 0.01 / sqrt(3) = 0.02484
    difference = summary["claims"][0]["difference"]
    assert difference.mean == pytest.approx(0.10) and difference.half_width == pytest.approx(0.02484, abs=1e-5)
    assert summary["claims"][0]["verdict"] == "supported"
    report = (tmp_path / "report.md").read_text()
    assert "| b | 52.0 ± 4.3 | 25.0 ± 0.0 |" in report and "| b beats a on VQA | 10.0 ± 2.5 | **supported** |" in report
    assert (tmp_path / "report.png").stat().st_size > 0 and json.loads((tmp_path / "report.json").read_text())["claims"]
    assert "locality" in STUDIES
