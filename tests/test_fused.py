"""DINOv2 (with registers) towers and the fused DINOv2 + SigLIP encoder (Prismatic)."""

import pytest
import torch
from transformers import AutoModel, AutoModelForImageTextToText, AutoProcessor, Dinov2WithRegistersConfig

from vlm.build import BuildSpec, build
from vlm.config import VLMConfig
from vlm.layout import tokens_per_image
from vlm.tiny.backbone import tiny_path
from vlm.vision.encoder import encoder_class


@pytest.mark.parametrize("strategy, expected", [("default", 64), ("full", 64 + 1 + 4)])
def test_dinov2_registers_prefix(strategy, expected):
    vision = Dinov2WithRegistersConfig(image_size=64, patch_size=8, hidden_size=32, num_hidden_layers=2,
                                       num_attention_heads=2, num_register_tokens=4)
    config = VLMConfig(vision_config=vision, text_config={"model_type": "llama"},
                       vision_feature_select_strategy=strategy, vision_feature_layer=-1)
    encoder = encoder_class(config)(config)
    out = encoder(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, expected, 32) and tokens_per_image(config) == expected
    hidden = encoder.model(pixel_values=torch.zeros(1, 3, 64, 64), output_hidden_states=True).hidden_states[-1]
    if strategy == "default":  # CLS and the four registers are dropped: what is left are the patches
        torch.testing.assert_close(encoder(torch.zeros(1, 3, 64, 64)), hidden[:, 5:])
    assert sum(len(list(b.parameters())) for b in encoder.blocks()) == len(list(encoder.parameters()))


@pytest.fixture(scope="module")
def fused():
    return build(BuildSpec(vision="tiny-dinov2+tiny-siglip", llm="tiny-llama", template="llama3"))


def test_fused_equals_members_run_independently(fused):
    model, processor = fused
    assert processor.image_processor.image_mean == [0.0, 0.0, 0.0]  # members normalise themselves
    pixels = torch.rand(2, 3, 64, 64)
    expected = []
    for key, mean, std in (("tiny-dinov2", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
                           ("tiny-siglip", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))):
        tower = AutoModel.from_pretrained(tiny_path(key))
        x = (pixels - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
        hidden = tower(pixel_values=x, output_hidden_states=True).hidden_states[-2]
        expected.append(hidden[:, 1:] if key == "tiny-dinov2" else hidden)  # DINOv2's CLS dropped
    with torch.no_grad():
        torch.testing.assert_close(model.vision_tower(pixels), torch.cat(expected, dim=-1), rtol=1e-5, atol=1e-5)
    assert model.config.image_seq_length == 64 and model.vision_tower.out_channels(model.config) == 128


def test_fused_round_trip_and_generate(fused, tmp_path, images):
    model, processor = fused
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    loaded, loaded_processor = AutoModelForImageTextToText.from_pretrained(tmp_path), AutoProcessor.from_pretrained(tmp_path)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is it?"}]}]
    inputs = loaded_processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                  return_dict=True, return_tensors="pt", images=[images[1]])
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs).logits, loaded(**inputs).logits, rtol=0, atol=0)
    assert loaded.generate(**inputs, max_new_tokens=3, do_sample=False).shape[1] == inputs["input_ids"].shape[1] + 3


def test_fused_grid_mismatch_is_named():
    from transformers import Dinov2Config, SiglipVisionConfig

    from vlm.vision.fused import FusedVisionConfig

    members = [Dinov2Config(image_size=64, patch_size=8).to_dict(), SiglipVisionConfig(image_size=64, patch_size=16).to_dict()]
    vision = FusedVisionConfig(members=members, image_mean=[[0.5] * 3] * 2, image_std=[[0.5] * 3] * 2, image_size=64)
    config = VLMConfig(vision_config=vision, text_config={"model_type": "llama"})
    with pytest.raises(ValueError, match=r"share a token grid at 64 px.*\(8, 8\).*\(4, 4\)"):
        tokens_per_image(config)
