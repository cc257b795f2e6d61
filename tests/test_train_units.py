"""The training pieces on their own: overrides, train modes (LoRA, from:K), optimizer groups, QLoRA."""

import pytest
import torch
from transformers import AutoModelForImageTextToText

from vlm.build import BuildSpec
from vlm.recipes.run import resolve
from vlm.train.config import LoraConfig, OptimConfig, Recipe, RunConfig, StageConfig
from vlm.train.engine import cpu_threads
from vlm.train.optim import make_optimizer, make_scheduler, param_groups
from vlm.train.overrides import OverrideError, apply_overrides, coerce, parse_overrides
from vlm.train.trainable import (
    QLoRAUnavailableError,
    apply_train_modes,
    has_lora,
    merge_lora,
    parameter_table,
)


def _recipe() -> Recipe:
    return Recipe(name="t", model=BuildSpec(), stages=[StageConfig(name="align"), StageConfig(name="instruct")])


def test_overrides_reach_every_kind_of_field():
    recipe = _recipe()
    argv = ["--stages.instruct.optim.lr", "1e-4", "--stages.align.train", "llm=lora,projector=full",
            "--model.vision_feature_layer", "-2,-5", "--model.image_size", "none", "--run.resume",
            "--stages.align.data.tasks", "caption,vqa", "--model.vision_overrides", "stage5_depth=2"]
    apply_overrides(recipe, parse_overrides(argv))
    assert recipe.stage("instruct").optim.lr == 1e-4 and recipe.stage("align").optim.lr == 2e-5
    assert recipe.stage("align").train == {"llm": "lora", "projector": "full"}
    assert recipe.model.vision_feature_layer == [-2, -5] and recipe.model.image_size is None
    assert recipe.run.resume is True
    assert recipe.stage("align").data.tasks == ["caption", "vqa"]
    assert recipe.model.vision_overrides == {"stage5_depth": 2}


@pytest.mark.parametrize("argv, message", [
    (["--stages.finetune.optim.lr", "1"], "no item named 'finetune'"),
    (["--stages.align.optim.rate", "1"], "no field 'rate'"),
    (["--stages.align.batch_size", "big"], "--stages.align.batch_size 'big'"),
    (["--model.aspect", "stretch"], "choose one of"),
])
def test_bad_overrides_say_what_is_wrong(argv, message):
    with pytest.raises(OverrideError, match=message):
        apply_overrides(_recipe(), parse_overrides(argv))


def test_preset_and_run_shorthands():
    paper = _recipe()
    paper.run.output_dir = "runs/paper"
    recipe = resolve(_recipe(), {"paper": paper}, ["--preset", "paper", "--resume", "--seed", "3"])
    assert recipe.run.output_dir == "runs/paper" and recipe.run.resume and recipe.run.seed == 3
    with pytest.raises(SystemExit, match="unknown preset"):
        resolve(_recipe(), {"paper": paper}, ["--preset", "nope"])
    assert coerce("3", int | list[int]) == 3


@pytest.fixture
def model(built_models):
    return AutoModelForImageTextToText.from_pretrained(built_models())


def test_train_modes_and_table(model):
    apply_train_modes(model, {"vision": "from:3", "projector": "full", "llm": "frozen"}, LoraConfig())
    blocks = model.vision_tower.blocks()
    assert all(p.requires_grad for p in blocks[-1].parameters())
    assert not any(p.requires_grad for b in blocks[:2] for p in b.parameters())
    assert not any(p.requires_grad for p in model.language_model.parameters())
    table = parameter_table(model, {"vision": "from:3", "projector": "full"})
    assert "from:3" in table and "trainable" in table
    with pytest.raises(ValueError, match="blocks 1..3"):
        apply_train_modes(model, {"vision": "from:9"}, LoraConfig())
    with pytest.raises(ValueError, match="unknown parts"):
        apply_train_modes(model, {"decoder": "full"}, LoraConfig())


def test_lora_trains_adapters_only_and_merges_exactly(model, images):
    apply_train_modes(model, {"projector": "full", "llm": "lora"}, LoraConfig(r=4, alpha=8, dropout=0.0))
    assert has_lora(model)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n or n.startswith("projector.") for n in trainable)
    assert not any("lm_head" in n for n in trainable)
    for name, p in model.named_parameters():  # make the adapters non-trivial
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.5)
    ids = torch.tensor([[1, 5, 9, 14, 3]])
    model.eval()
    with torch.no_grad():
        before = model(input_ids=ids).logits
        merge_lora(model)
        after = model(input_ids=ids).logits
    assert not has_lora(model)
    torch.testing.assert_close(before, after, rtol=1e-5, atol=1e-5)
    assert set(model.state_dict()) == set(AutoModelForImageTextToText.from_config(model.config).state_dict())


def test_param_groups_per_part_lr_and_no_decay(model):
    apply_train_modes(model, {"vision": "full", "projector": "full", "llm": "full"}, LoraConfig())
    optim = OptimConfig(lr=1e-3, lr_vision=1e-5, weight_decay=0.1)
    groups = {g["name"]: g for g in param_groups(model, optim)}
    assert groups["vision/decay"]["lr"] == 1e-5 and groups["projector/decay"]["lr"] == 1e-3
    assert all(p.ndim >= 2 for p in groups["llm/decay"]["params"])
    assert groups["llm/no_decay"]["weight_decay"] == 0.0 and groups["llm/decay"]["weight_decay"] == 0.1
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert sum(p.numel() for g in groups.values() for p in g["params"]) == n_trainable
    scheduler = make_scheduler(make_optimizer(model, optim), OptimConfig(lr=1e-3, warmup_ratio=0.1), 100)
    assert scheduler.get_last_lr()[0] == 0.0  # warmup starts at zero
    model.requires_grad_(False)
    with pytest.raises(ValueError, match="nothing trains"):
        param_groups(model, optim)


def test_qlora_without_cuda_stops_at_once(model):
    if torch.cuda.is_available():
        pytest.skip("a CUDA machine can run QLoRA")
    with pytest.raises(QLoRAUnavailableError, match="bitsandbytes.*CUDA"):
        apply_train_modes(model, {"llm": "qlora"}, LoraConfig())


def test_cpu_threads_share_the_cores_among_local_processes(monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    assert cpu_threads(RunConfig()) == 8  # accelerate launch's OMP_NUM_THREADS=1 does not idle the others
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert cpu_threads(RunConfig()) == 4
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "16")
    assert cpu_threads(RunConfig()) == 1
    assert cpu_threads(RunConfig(cpu_threads=3)) == 3


def test_fsdp_units_are_the_tower_the_projector_and_each_decoder_layer(built_models):
    from vlm.train.engine import fsdp_units
    from vlm.train.stages.base import VLM_PARTS

    for llm, layer in (("tiny-llama", "LlamaDecoderLayer"), ("tiny-qwen2", "Qwen2DecoderLayer")):
        vlm_model = AutoModelForImageTextToText.from_pretrained(built_models("tiny-clip", "mlp2x_gelu", llm))
        # the tower's class shares its name with transformers' CLIPEncoder inside it; the lookup finds the tower
        assert fsdp_units(vlm_model, VLM_PARTS) == sorted(["CLIPEncoder", "MLP2xGELUProjector", layer])


def _checkpoint(folder, step: int):
    from dataclasses import asdict

    from vlm.train.checkpoint import STATE_FILE, TrainerState, _manifest, _write_json

    path = folder / f"checkpoint-{step}"
    (path / "sharded").mkdir(parents=True)
    (path / "model.safetensors").write_bytes(bytes(range(256)) * 8)
    (path / "sharded" / "__0_0.distcp").write_bytes(b"x" * 100)
    _write_json(path / STATE_FILE, asdict(TrainerState(step=step)) | {"files": _manifest(path)})
    return path


def test_checkpoint_files_are_verified_and_a_bad_one_is_set_aside(tmp_path):
    from types import SimpleNamespace

    from vlm.train.checkpoint import CheckpointCorruptError, latest_usable, verify

    old, new = _checkpoint(tmp_path, 3), _checkpoint(tmp_path, 6)
    verify(new)
    with open(new / "model.safetensors", "r+b") as f:
        f.truncate(1000)
    with pytest.raises(CheckpointCorruptError, match=r"checkpoint-6/model.safetensors is truncated or overwritten \(1,000 bytes, 2,048 written\)"):
        verify(new)
    (old / "sharded" / "__0_0.distcp").write_bytes(b"y" * 100)
    with pytest.raises(CheckpointCorruptError, match=r"checkpoint-3/sharded/__0_0.distcp is corrupted"):
        verify(old)
    newer = _checkpoint(tmp_path, 9)
    (newer / "sharded" / "__0_0.distcp").unlink()
    with pytest.raises(CheckpointCorruptError, match="__0_0.distcp is missing"):
        verify(newer)
    good = _checkpoint(tmp_path, 1)
    accelerator = SimpleNamespace(is_main_process=True, num_processes=1)
    assert latest_usable(accelerator, tmp_path) == good
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint-1", "checkpoint-3.unusable", "checkpoint-6.unusable", "checkpoint-9.unusable"]
    assert latest_usable(accelerator, tmp_path / "none") is None
