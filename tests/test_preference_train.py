"""The dpo stage in the one loop: POVID's two stages under DeepSpeed ZeRO-2 with 2 CPU processes,
killed mid-stage and resumed bit-identically."""

import json
from pathlib import Path

import pytest
from train_helpers import assert_identical, command, run, run_and_kill

from vlm.build import BuildSpec, build
from vlm.recipes.base import RECIPES
from vlm.recipes.run import resolve


@pytest.fixture(scope="module")
def start(tmp_path_factory):
    out = tmp_path_factory.mktemp("instructed")
    model, processor = build(BuildSpec(vision="tiny-clip", projector="mlp2x_gelu", llm="tiny-llama", template="llama3"))
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def _quick(start):
    args = ["--run.start_from", str(start), "--run.eval_limit", "0", "--run.tracker", "none"]
    for stage in ("povid_text", "povid_noise"):
        args += [f"--stages.{stage}.max_steps", "4", f"--stages.{stage}.data.n_images", "12",
                 f"--stages.{stage}.batch_size", "2", f"--stages.{stage}.log_every", "1",
                 f"--stages.{stage}.optim.lr", "1e-3", f"--stages.{stage}.data.image_size", "64"]
    return args + ["--stages.povid_noise.save_every", "2"]


def _rows(out):
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


def test_povid_under_zero2_two_processes_resumes_exactly(start, tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    run(command("povid.py", straight, *_quick(start), processes=2, zero=2))
    assert "2 process(es), DistributedType.DEEPSPEED" in (straight / "train.log").read_text()
    rows = _rows(straight)
    noise = [r for r in rows if r["stage"] == "povid_noise"]
    assert [r["step"] for r in noise] == [1, 2, 3, 4]
    assert all("noise_rewards/margin" in r and "rewards/accuracy" in r for r in noise)
    run_and_kill(command("povid.py", killed, *_quick(start), processes=2, zero=2),
                 killed / "stages/povid_noise/checkpoints/checkpoint-2")
    run(command("povid.py", killed, *_quick(start), "--resume", processes=2, zero=2))
    assert "resumed from" in (killed / "train.log").read_text()
    assert_identical(straight / "model", killed / "model")
    assert [r["loss"] for r in _rows(killed)] == [r["loss"] for r in rows]


POVID = RECIPES.get("povid")


@pytest.mark.parametrize(("preset", "task"), [("existence_first", "objects"), ("noisy_teacher", "objects_noisy_teacher")])
def test_existence_presets_compare_against_the_existence_model(preset, task, tmp_path):
    recipe = resolve(POVID.default, POVID.presets, ["--preset", preset, "--run.start_from", str(tmp_path)])
    assert [(s.name, s.kind) for s in recipe.stages] == [("existence", "sft"), ("povid_text", "dpo"), ("povid_noise", "dpo")]
    assert recipe.stage("existence").data.tasks == [task]
    assert recipe.run.compare_with == "povid_text"  # evaluated before (the existence model) and after
    assert {"synthetic_pope", "synthetic_pope_auc", "synthetic_chair"} <= set(recipe.run.eval_tasks)


def test_start_from_a_recipe_runs_its_stages_first_unless_its_model_exists(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    recipe = resolve(POVID.default, POVID.presets, [])
    instruct = RECIPES.get("llava_convnext").default
    assert [s.name for s in recipe.stages] == [s.name for s in instruct.stages] + ["povid_text", "povid_noise"]
    assert recipe.model == instruct.model and recipe.run.start_from is None
    finished = tmp_path / instruct.run.output_dir / "model"
    finished.mkdir(parents=True)
    (finished / "config.json").write_text("{}")
    recipe = resolve(POVID.default, POVID.presets, [])
    assert [s.name for s in recipe.stages] == ["povid_text", "povid_noise"]
    assert recipe.run.start_from == str(Path(instruct.run.output_dir) / "model")


def _scenes(stage) -> set[int]:
    return set(range(stage.data.first_image, stage.data.first_image + stage.data.n_images))


def test_preference_pairs_use_scenes_no_earlier_stage_trained_on():
    earlier = RECIPES.get("llava_convnext").default.stages + [s for r in POVID.presets.values() for s in r.stages]
    seen = set().union(*(_scenes(s) for s in earlier if s.kind != "dpo"))
    dpo = [s for r in (POVID.default, *POVID.presets.values()) for s in r.stages if s.kind == "dpo"]
    assert dpo and all(seen.isdisjoint(_scenes(s)) for s in dpo)
