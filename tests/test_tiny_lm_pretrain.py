"""Text pre-training of the tiny LM: truthful scene texts and questions, answer-only loss, a loadable result."""

import json
import random

from transformers import AutoModelForCausalLM, AutoTokenizer

from vlm.shapes.world import COLOURS, SHAPES, SyntheticWorld
from vlm.tiny.backbone import tiny_path
from vlm.tiny.pretrain_text import TextPretrainConfig, _batch, pretrain_text, scene_text, text_example


def test_scene_text_names_every_object_and_questions_are_answerable():
    world, rng = SyntheticWorld("train", 64), random.Random(0)
    for i in range(40):
        scene = world.scene(i)
        text = scene_text(scene, rng)
        assert all(f"{o.size} {o.colour} {o.shape}" in text for o in scene.objects)
        prompt, answer = text_example(scene, rng)
        assert prompt.startswith("Objects: ") and "Where is" not in prompt  # positions are not in the text
        if answer in ("yes", "no"):
            question = prompt.split("\n")[1]
            (obj,) = [f"{c} {s}" for c in COLOURS for s in SHAPES if f" {c} {s}" in question]
            assert (answer == "yes") == (obj in {o.name for o in scene.objects})


def test_loss_is_on_the_answer_and_eos_only():
    tokenizer = AutoTokenizer.from_pretrained(tiny_path("tiny-llama"))
    batch = _batch(tokenizer, [("Objects: a small red circle.\nIs there a red circle?\n", "yes"), ("Q\n", "three")])
    for row, labels, mask in zip(batch["input_ids"], batch["labels"], batch["attention_mask"], strict=True):
        kept = row[labels != -100].tolist()
        assert kept[-1] == tokenizer.eos_token_id
        assert tokenizer.decode(kept[:-1]) in ("yes", "three")
        assert (labels[mask == 0] == -100).all()


def test_pretrain_text_learns_and_saves_a_loadable_lm(tmp_path):
    report = pretrain_text(tiny_path("tiny-llama"), tmp_path / "lm", TextPretrainConfig(steps=30, eval_scenes=20))
    assert report["losses"][-1] < report["losses"][0]
    assert 0.0 <= report["text_existence_auc"] <= 1.0
    assert json.loads((tmp_path / "lm" / "pretrain.json").read_text()) == report
    AutoModelForCausalLM.from_pretrained(tmp_path / "lm")
    AutoTokenizer.from_pretrained(tmp_path / "lm")
