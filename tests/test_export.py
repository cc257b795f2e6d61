"""Native export: the exported folder loads with plain transformers and computes what our model computes."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForImageTextToText, AutoProcessor

from vlm.export import NotExportableError, export_llava

REFERENCE = Path(__file__).with_name("llava_reference.py")
QUESTION = "What shape is left of the red circle?"


@pytest.mark.parametrize(
    ("vision", "projector", "llm"),
    [("tiny-clip", "mlp2x_gelu", "tiny-llama"), ("tiny-siglip", "linear", "tiny-qwen2")],
)
def test_llava_export_parity(built_models, images, tmp_path, vision, projector, llm):
    path = built_models(vision, projector, llm)
    model = AutoModelForImageTextToText.from_pretrained(path).eval()
    processor = AutoProcessor.from_pretrained(path)
    export_llava(model, processor, tmp_path / "llava")
    image_file = tmp_path / "image.png"
    images[1].save(image_file)  # non-square: exercises pad-to-square in both processors

    env_run = [sys.executable, str(REFERENCE), str(tmp_path / "llava"), str(image_file), QUESTION]
    subprocess.run([*env_run, str(tmp_path / "ref.safetensors")], check=True)
    ref = load_file(tmp_path / "ref.safetensors")

    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    batch = processor(images=[images[1]], text=[text], return_tensors="pt")
    assert torch.equal(batch["input_ids"], ref["input_ids"])
    with torch.no_grad():
        logits = model(**batch).logits
    diff = (logits - ref["logits"]).abs().max().item()
    print(f"export parity {vision}+{projector}+{llm}: max |logit diff| = {diff:.3e}")
    assert diff < 1e-4
    generated = model.generate(**batch, max_new_tokens=12, do_sample=False)
    assert torch.equal(generated, ref["generated"])


def test_unexportable_parts_say_why(built_models):
    model = AutoModelForImageTextToText.from_pretrained(built_models("tiny-clip", "mlp3x_gelu", "tiny-llama"))
    processor = AutoProcessor.from_pretrained(built_models("tiny-clip", "mlp3x_gelu", "tiny-llama"))
    with pytest.raises(NotExportableError, match=r"projector 'mlp3x_gelu' has no Llava equivalent"):
        export_llava(model, processor, "/nonexistent")
