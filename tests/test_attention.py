"""Attention implementations and device placement: the choice reaches both parts, is kept in the folder,
fails clearly where a part or the machine cannot run it, and `device_map="auto"` splits the model whole
layers at a time and generates what the unsplit model does."""

import importlib.util
import json
import logging

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

from vlm.attention import AttentionUnavailableError
from vlm.build import BuildSpec, build

QWEN = dict(vision="tiny-clip", llm="tiny-qwen2", template="chatml")


def _inputs(folder):
    processor = AutoProcessor.from_pretrained(folder)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What colour is it?"}]}]
    return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True,
                                         return_tensors="pt", images=[image])


def _implementations(model):
    return (model.config._attn_implementation, model.language_model.config._attn_implementation,
            model.vision_tower.model.config._attn_implementation)


def test_sdpa_and_eager_give_the_same_logits(built_models):
    folder = built_models(**QWEN)
    inputs = _inputs(folder)
    logits = {}
    for name in ("eager", "sdpa"):
        model = AutoModelForImageTextToText.from_pretrained(folder, attn_implementation=name)
        assert _implementations(model) == (name, name, name)
        with torch.inference_mode():
            logits[name] = model(**inputs).logits
    torch.testing.assert_close(logits["sdpa"], logits["eager"], atol=1e-5, rtol=1e-4)


def test_the_build_choice_is_kept_and_an_explicit_one_wins(tmp_path):
    model, processor = build(BuildSpec(**QWEN, attn_implementation="eager"))
    assert _implementations(model) == ("eager", "eager", "eager")
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["default_attn_implementation"] == "eager"
    assert _implementations(AutoModelForImageTextToText.from_pretrained(tmp_path)) == ("eager",) * 3
    assert _implementations(AutoModelForImageTextToText.from_pretrained(tmp_path, attn_implementation="sdpa")) == ("sdpa",) * 3


def test_a_kept_choice_this_machine_cannot_run_falls_back_with_a_warning(built_models, tmp_path, caplog):
    if importlib.util.find_spec("flash_attn") and torch.cuda.is_available():
        pytest.skip("this machine runs flash-attn")
    folder = built_models(**QWEN)
    for f in folder.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "default_attn_implementation": "flash_attention_2"}))
    with caplog.at_level(logging.WARNING, logger="vlm.modeling"):
        model = AutoModelForImageTextToText.from_pretrained(tmp_path)
    assert "flash_attention_2" in caplog.text and "cannot run here" in caplog.text
    assert model.language_model.config._attn_implementation == "sdpa"


def test_flash_attention_without_flash_attn_or_cuda_fails_before_loading(built_models):
    if importlib.util.find_spec("flash_attn") and torch.cuda.is_available():
        pytest.skip("this machine runs flash-attn")
    with pytest.raises(AttentionUnavailableError, match="flash_attention_2.*cannot run here.*sdpa"):
        build(BuildSpec(**QWEN, attn_implementation="flash_attention_2"))
    with pytest.raises(AttentionUnavailableError, match="cannot run here"):
        AutoModelForImageTextToText.from_pretrained(built_models(**QWEN), attn_implementation="flash_attention_2")


def test_a_vision_family_without_that_attention_is_named():
    with pytest.raises(ValueError, match=r"vision tower \(siglip2_vision_model\) cannot run attn_implementation='flex_attention'; it runs eager, sdpa"):
        build(BuildSpec(vision="tiny-siglip2", llm="tiny-llama", attn_implementation="flex_attention"))
    with pytest.raises(ValueError, match="choose one of eager, sdpa, flash_attention_2, flex_attention"):
        build(BuildSpec(**QWEN, attn_implementation="flash"))


def test_a_tower_without_attention_takes_any_choice(built_models):
    """ConvNeXt has no attention: the choice is the LLM's (transformers' ConvNextModel refuses sdpa itself)."""
    folder = built_models(vision="tiny-convnext", vision_feature_layer=-1)
    model = AutoModelForImageTextToText.from_pretrained(folder, attn_implementation="sdpa")
    assert model.language_model.config._attn_implementation == "sdpa"
    with torch.inference_mode():
        model(**_inputs(folder))


def test_no_split_modules_come_from_the_parts(built_models):
    clip = AutoModelForImageTextToText.from_pretrained(built_models(**QWEN))
    assert {"CLIPEncoderLayer", "Qwen2DecoderLayer"} <= clip._no_split_modules
    convnext = AutoModelForImageTextToText.from_pretrained(built_models(vision="tiny-convnext", vision_feature_layer=-1))
    assert {"ConvNextLayer", "LlamaDecoderLayer"} <= convnext._no_split_modules


def test_device_map_auto_split_over_cpu_and_disk_generates_the_same(built_models, tmp_path):
    """On a CPU-only machine accelerate places modules on "cpu" and "disk" (an offload folder; weights are
    read in as each module runs): a ``max_memory`` for "cpu" below the model's size forces that split."""
    folder = built_models(**QWEN)
    inputs = _inputs(folder)
    whole = AutoModelForImageTextToText.from_pretrained(folder)
    size = sum(p.numel() * p.element_size() for p in whole.parameters())
    # accelerate keeps room for the largest layer on "cpu" when it offloads; at 90 % the cut falls inside the LLM
    split = AutoModelForImageTextToText.from_pretrained(folder, device_map="auto", max_memory={"cpu": size * 9 // 10},
                                                        offload_folder=str(tmp_path / "offload"))
    placement = split.hf_device_map
    assert set(placement.values()) == {"cpu", "disk"}, placement
    assert any(k.startswith("language_model") and v == "cpu" for k, v in placement.items()), placement
    assert any(k.startswith("language_model") and v == "disk" for k, v in placement.items()), placement
    inside_a_layer = [k for k in placement if ".layers." in k and k.split(".layers.")[1].count(".")]
    assert not inside_a_layer, f"no-split layers were cut: {inside_a_layer}"
    with torch.inference_mode():
        expected = whole.generate(**inputs, max_new_tokens=6, do_sample=False)
        got = split.generate(**inputs, max_new_tokens=6, do_sample=False)
        torch.testing.assert_close(split(**inputs).logits, whole(**inputs).logits)
    assert torch.equal(got, expected)


def test_the_command_line_and_recipes_reach_the_choice(tmp_path):
    from vlm.cli import main
    from vlm.recipes.base import RECIPES
    from vlm.recipes.run import resolve

    assert main(["build", "--vision", "tiny-clip", "--projector", "linear", "--llm", "tiny-llama",
                 "--attn-implementation", "eager", "--out", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "config.json").read_text())["default_attn_implementation"] == "eager"
    entry = RECIPES.get("llava15")
    recipe = resolve(entry.default, entry.presets, ["--model.attn_implementation", "sdpa"])
    assert recipe.model.attn_implementation == "sdpa"
