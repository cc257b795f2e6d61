"""ConvLLaVA's ConvNeXt encoder: token counts, the fifth stage, blocks and a full tiny VLM."""

import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor, ConvNextConfig, ConvNextModel

from vlm.build import BuildSpec, build
from vlm.config import VLMConfig
from vlm.layout import tokens_per_image
from vlm.vision.convnext import ConvNextEncoder, ConvNextV2Encoder
from vlm.vision.encoder import encoder_class

STAGE5 = {"stage5_depth": 1, "stage5_hidden_size": 8}


def narrow(stage5: bool = True, model_type: str = "convnext", **kw) -> VLMConfig:
    """A ConvNeXt as thin as possible: patch 4, four stages (+ stage 5), stride 32 (64)."""
    vision = dict(model_type=model_type, patch_size=4, hidden_sizes=[4, 4, 4, 4], depths=[1, 1, 1, 1])
    vision.update(STAGE5 if stage5 else {})
    return VLMConfig(vision_config=vision, vision_feature_layer=-1, **kw)


@pytest.mark.parametrize("size, tokens", [(768, 144), (1024, 256), (1536, 576)])
def test_stage5_token_counts(size, tokens):
    config = narrow()
    assert encoder_class(config) is ConvNextEncoder
    assert tokens_per_image(config, size) == tokens


@pytest.mark.parametrize("size, tokens", [(768, 576), (1024, 1024), (1536, 2304)])
def test_stride_32_without_stage5(size, tokens):
    assert tokens_per_image(narrow(stage5=False), size) == tokens


@pytest.mark.parametrize("model_type, stage5, size", [("convnext", True, 1536), ("convnextv2", True, 768),
                                                      ("convnext", False, 768)])
def test_forward_shape_agrees(model_type, stage5, size):
    config = narrow(stage5, model_type)
    encoder = encoder_class(config)(config).eval()
    with torch.no_grad():
        out = encoder(torch.randn(1, 3, size, size))
    assert out.shape == (1, tokens_per_image(config, size), encoder.out_channels(config))
    assert out.shape[-1] == (8 if stage5 else 4)
    assert isinstance(encoder, ConvNextV2Encoder) == (model_type == "convnextv2")


def test_other_feature_layers_are_refused():
    with pytest.raises(ValueError, match="vision_feature_layer=-1"):
        ConvNextEncoder.out_channels(VLMConfig(vision_config=narrow().vision_config, vision_feature_layer=-2))


def test_features_match_convnext_then_stage5():
    config = narrow(image_size=128)
    encoder = ConvNextEncoder(config).eval()
    reference = ConvNextModel(ConvNextConfig(patch_size=4, hidden_sizes=[4, 4, 4, 4], depths=[1, 1, 1, 1])).eval()
    reference.load_state_dict(encoder.model.state_dict())
    pixels = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        last = reference(pixel_values=pixels, output_hidden_states=True).hidden_states[-1]
        expected = encoder.stage5(last)
        assert torch.equal(encoder.feature_map(pixels), expected)
        tokens = encoder(pixels)
    assert expected.shape == (2, 8, 2, 2)
    assert torch.equal(tokens, expected.flatten(2).transpose(1, 2))  # row-major
    assert torch.equal(tokens[:, 1], expected[:, :, 0, 1])


def test_stage5_init_is_deterministic():
    a, b = ConvNextEncoder(narrow()), ConvNextEncoder(narrow())
    pairs = zip(a.stage5.state_dict().values(), b.stage5.state_dict().values(), strict=True)
    assert all(torch.equal(x, y) for x, y in pairs)


@pytest.mark.parametrize("stage5", [True, False])
def test_blocks_cover_every_parameter_once(stage5):
    encoder = ConvNextEncoder(narrow(stage5))
    blocks = encoder.blocks()
    assert len(blocks) == (5 if stage5 else 4)
    ids = [id(p) for block in blocks for p in block.parameters()]
    assert len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in encoder.parameters()}
    if stage5:
        assert blocks[-1][0] is encoder.stage5


def test_tiny_vlm_round_trip(tmp_path, images):
    spec = BuildSpec(vision="tiny-convnext", projector="mlp2x_gelu", llm="tiny-llama", image_size=256,
                     vision_feature_layer=-1, vision_overrides={"stage5_depth": 1, "stage5_hidden_size": 96})
    model, processor = build(spec)
    model.eval()
    assert model.config.image_seq_length == 16  # 256 px at stride 64
    assert len(model.vision_tower.blocks()) == 5
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What shape?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(text=[text], images=[images[1]], return_tensors="pt")
    assert inputs["pixel_values"].shape == (1, 3, 256, 256)
    with torch.no_grad():
        out = model(**inputs, labels=inputs["input_ids"])
        generated = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert torch.isfinite(out.loss)
    assert inputs["input_ids"].shape[1] < generated.shape[1] <= inputs["input_ids"].shape[1] + 3

    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    loaded = AutoModelForImageTextToText.from_pretrained(tmp_path).eval()
    assert (loaded.config.vision_config.stage5_depth, loaded.config.vision_config.stage5_hidden_size) == (1, 96)
    reloaded = AutoProcessor.from_pretrained(tmp_path)(text=[text], images=[images[1]], return_tensors="pt")
    assert torch.equal(reloaded["pixel_values"], inputs["pixel_values"])
    with torch.no_grad():
        assert torch.equal(loaded(**inputs).logits, out.logits)
