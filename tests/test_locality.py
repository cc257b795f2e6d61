"""Locality alignment in the loop: MaskEmbed under DeepSpeed ZeRO-2 (2 CPU processes), killed and
resumed exactly; the aligned encoder loads wherever the original did; the recipe's helpers."""

import json

import torch
from train_helpers import assert_identical, command, run, run_and_kill
from transformers import AutoModel

from vlm.build import BuildSpec, build
from vlm.shapes.patch_probe import patch_probe
from vlm.tiny.backbone import tiny_path
from vlm.tiny.pretrain_image_level import pretrain_image_level
from vlm.train.fit import FitConfig


def _quick(encoder):
    return ["--run.start_from", str(encoder), "--run.tracker", "none",
            "--stages.maskembed.max_steps", "4", "--stages.maskembed.batch_size", "2",
            "--stages.maskembed.data.n_images", "16", "--stages.maskembed.save_every", "2",
            "--stages.maskembed.log_every", "1"]


def test_maskembed_zero2_resumes_exactly_and_loads_as_the_original(tmp_path):
    encoder = tiny_path("tiny-clip")
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    run(command("locality_alignment.py", straight, *_quick(encoder), processes=2, zero=2))
    assert "2 process(es), DistributedType.DEEPSPEED" in (straight / "train.log").read_text()
    losses = [json.loads(x)["loss"] for x in (straight / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 4
    run_and_kill(command("locality_alignment.py", killed, *_quick(encoder), processes=2, zero=2),
                 killed / "stages/maskembed/checkpoints/checkpoint-2")
    run(command("locality_alignment.py", killed, *_quick(encoder), "--resume", processes=2, zero=2))
    assert "resumed from" in (killed / "train.log").read_text()
    assert_identical(straight / "model", killed / "model")
    # the aligned encoder is a CLIP vision folder again: AutoModel and the VLM builder take it as before
    original, aligned = AutoModel.from_pretrained(encoder), AutoModel.from_pretrained(straight / "model")
    assert type(aligned) is type(original)
    assert not torch.equal(aligned.embeddings.patch_embedding.weight, original.embeddings.patch_embedding.weight)
    model, processor = build(BuildSpec(vision=str(straight / "model"), llm="tiny-llama"))
    assert model.config.image_seq_length == 64


def test_image_level_pretraining_then_patch_probe(tmp_path):
    report = pretrain_image_level(tiny_path("tiny-clip"), tmp_path, FitConfig(steps=20, batch_size=8, warmup=3))
    assert report["last_loss"] < report["first_loss"]
    assert (tmp_path / "pretrain.json").is_file() and AutoModel.from_pretrained(tmp_path).config.model_type == "clip_vision_model"
    scores = patch_probe(tmp_path, steps=10, batch_size=8, eval_images=8)
    assert set(scores) == {"colour", "shape", "centre_shape", "box_l1"} and scores["box_l1"] >= 0.0
    assert all(0.0 <= scores[k] <= 1.0 for k in ("colour", "shape", "centre_shape"))
