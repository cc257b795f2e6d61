"""LoRA round trips on the LLaVA-1.5 architecture (CLIP ViT + mlp2x_gelu + a Qwen2 / Llama LM) at a small
size: save -> merge -> reload -> export -> reload, logits compared at every step. The same trip at the
true shapes runs in the real-shape rehearsal (tests/test_real_shape.py)."""

import pytest
import torch
from parity import inputs, logits, max_diff, picture, reference, write_checkpoint
from transformers import AutoModelForImageTextToText

from vlm.cli import main
from vlm.train.config import LoraConfig, StageConfig
from vlm.train.stages.sft import SFTOptions, SupervisedStage


@pytest.mark.parametrize("llm", ["tiny-qwen2", "tiny-llama"])  # tied and untied heads
@pytest.mark.parametrize("train", [{"vision": "frozen", "projector": "full", "llm": "lora"},
                                   {"vision": "frozen", "projector": "lora", "llm": "lora"}],
                         ids=["llm-lora", "projector+llm-lora"])
def test_lora_save_merge_reload_export_reload(built_models, tmp_path, llm, train):
    template = {"tiny-qwen2": "chatml", "tiny-llama": "llama3"}[llm]
    start = built_models("tiny-clip", "mlp2x_gelu", llm, template=template)
    config = StageConfig(name="instruct", train=train, options=SFTOptions(lora=LoraConfig(r=8, alpha=16, dropout=0.0)))
    stage = SupervisedStage(config)
    model = stage.prepare(stage.load(start))
    torch.manual_seed(1)
    for name, param in model.named_parameters():  # adapters as training leaves them: B no longer zero
        if param.requires_grad:
            param.data += torch.randn_like(param) * (0.2 if "lora_B" in name else 0.02)
    image = picture()
    batch = inputs(start, image)
    live = logits(model, batch)
    assert max_diff(live, logits(AutoModelForImageTextToText.from_pretrained(start), batch)) > 1e-2  # adapters matter

    trained = {n: p for n, p in model.named_parameters() if p.requires_grad}  # what a checkpoint holds
    assert any("lora_A" in n for n in trained) and (train["projector"] != "lora" or any(
        n.startswith("projector") and "lora_" in n for n in trained))
    ckpt = write_checkpoint(tmp_path / "run", config, start, trained)
    assert main(["merge", str(ckpt), "--out", str(tmp_path / "merged")]) == 0
    merged = AutoModelForImageTextToText.from_pretrained(tmp_path / "merged")
    assert not any("lora_" in k for k in merged.state_dict())
    reloaded = logits(merged, batch)
    assert max_diff(reloaded, live) < 1e-4

    assert main(["export", str(tmp_path / "merged"), "--to", "llava", "--out", str(tmp_path / "llava")]) == 0
    ref = reference(tmp_path / "llava", image)  # transformers' LlavaForConditionalGeneration and LlavaProcessor
    assert torch.equal(ref["input_ids"], batch["input_ids"])
    assert max_diff(ref["logits"], reloaded) < 1e-4
    assert torch.equal(ref["generated"], merged.generate(**batch, max_new_tokens=12, do_sample=False))
