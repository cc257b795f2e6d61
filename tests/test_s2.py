"""S² multi-scale wrapper: tiling, equality with a literal per-tile computation, token layout, a whole VLM."""

import json
import math

import pytest
import torch
from torch.nn import functional as F
from transformers import AutoModel, AutoModelForImageTextToText, AutoProcessor

from vlm.build import BuildSpec, build
from vlm.config import VLMConfig
from vlm.export import llava_blockers
from vlm.layout import tokens_per_image
from vlm.tiny.backbone import tiny_path
from vlm.vision.encoder import encoder_class
from vlm.vision.hf import load_vision_config
from vlm.vision.s2 import S2Encoder, merge_tiles, split_tiles


@pytest.mark.parametrize("n", [1, 2, 3])
def test_split_is_tile_major_and_merge_inverts_it(n):
    images = torch.randn(4, 3, 5 * n, 7 * n)
    tiles = split_tiles(images, n)
    assert tiles.shape == (n * n * 4, 3, 5, 7)
    for i in range(n):
        for j in range(n):
            for b in range(4):
                assert torch.equal(tiles[(i * n + j) * 4 + b], images[b, :, i * 5:(i + 1) * 5, j * 7:(j + 1) * 7])
    assert torch.equal(merge_tiles(tiles, n), images)


def s2_config(key: str, scales: list[int], **kw) -> VLMConfig:
    return VLMConfig(vision_config=load_vision_config(str(tiny_path(key))), text_config={"model_type": "llama"},
                     s2_scales=scales, **kw)


def literal_s2(feature_map, pixels: torch.Tensor, scales: list[int]) -> torch.Tensor:
    """S² written out: per scale, resize, slice each tile, encode it, paste its map, area-pool, concat."""
    split, outputs = scales[0], []
    for size in scales:
        n = math.ceil(size / split)
        image = F.interpolate(pixels, size=(size, size), mode="bicubic", align_corners=False)
        if size != n * split:
            image = F.interpolate(image, size=(n * split, n * split), mode="bicubic", align_corners=False)
        pasted = None
        for i in range(n):
            for j in range(n):
                fmap = feature_map(image[:, :, i * split:(i + 1) * split, j * split:(j + 1) * split])
                b, c, rows, cols = fmap.shape
                if pasted is None:
                    pasted = torch.zeros(b, c, n * rows, n * cols)
                pasted[:, :, i * rows:(i + 1) * rows, j * cols:(j + 1) * cols] = fmap
        covered = math.ceil(size / (n * split) * n * rows)
        pooled = F.interpolate(pasted, size=(covered, covered), mode="area")
        outputs.append(F.interpolate(pooled, size=(rows, cols), mode="area"))
    return torch.cat(outputs, dim=1).flatten(2).transpose(1, 2)


def clip_map(tower):
    def run(tile):
        patches = tower(pixel_values=tile, output_hidden_states=True).hidden_states[-2][:, 1:]  # CLS dropped
        return patches.transpose(1, 2).reshape(tile.shape[0], -1, 8, 8)
    return run


def convnext_map(tower):
    return lambda tile: tower(pixel_values=tile).last_hidden_state


@pytest.mark.parametrize("key, scales, layer, feature_map", [
    ("tiny-clip", [64, 96, 192], -2, clip_map),  # 96: resized up to 128, the covered 12x12 area kept
    ("tiny-convnext", [64, 128, 160], -1, convnext_map),
])
def test_wrapper_equals_literal_computation(key, scales, layer, feature_map):
    config = s2_config(key, scales, vision_feature_layer=layer)
    encoder = encoder_class(config)(config, pretrained=str(tiny_path(key))).eval()
    assert isinstance(encoder, S2Encoder)
    tower = AutoModel.from_pretrained(tiny_path(key)).eval()
    pixels = torch.randn(2, 3, scales[-1], scales[-1])
    with torch.no_grad():
        ours, expected = encoder(pixels), literal_s2(feature_map(tower), pixels, scales)
    rows, cols = encoder.grid(config, scales[-1])
    assert ours.shape == (2, rows * cols, encoder.out_channels(config)) == expected.shape
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)
    # every parameter belongs to exactly one block, so from:K training sees the whole tower
    assert sum(len(list(b.parameters())) for b in encoder.blocks()) == len(list(encoder.parameters()))


def test_layout_tokens_and_channels():
    config = s2_config("tiny-clip", [64, 128, 192])
    assert config.image_size == 192  # the processor delivers the largest scale
    assert tokens_per_image(config) == 64 and encoder_class(config).out_channels(config) == 3 * 64
    config.projector_type = "pool2x2"
    assert tokens_per_image(config) == 16  # spatial projectors pool the base grid


def test_bad_s2_configs_are_named():
    with pytest.raises(ValueError, match="strictly increasing"):
        s2_config("tiny-clip", [128, 64])
    with pytest.raises(ValueError, match="at least two"):
        s2_config("tiny-clip", [64])
    with pytest.raises(ValueError, match="image size is the largest scale, 128; got image_size=64"):
        s2_config("tiny-clip", [64, 128], image_size=64)
    config = s2_config("tiny-clip", [64, 128], vision_feature_select_strategy="full")
    with pytest.raises(ValueError, match="use vision_feature_select_strategy='default'"):
        tokens_per_image(config)
    with pytest.raises(ValueError, match="use vision_feature_select_strategy='default'"):
        encoder_class(config)(config)


def test_vlm_with_s2_trains_generates_and_reloads(images, tmp_path):
    model, processor = build(BuildSpec(vision="tiny-clip", llm="tiny-llama", s2_scales=[64, 128]))
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is it?"}]}]
    inputs = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True,
                                           return_tensors="pt", images=images[:1])
    assert inputs["pixel_values"].shape == (1, 3, 128, 128)
    assert int((inputs["input_ids"] == model.config.image_token_id).sum()) == model.config.image_seq_length == 64
    assert model.projector.in_dim == 2 * 64
    assert any("S2" in reason for reason in llava_blockers(model))

    model.train()
    model(**inputs, labels=inputs["input_ids"]).loss.backward()
    for part in (model.projector, model.vision_tower):
        grads = [p.grad for p in part.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)
    model.zero_grad()
    model.eval()
    assert model.generate(**inputs, max_new_tokens=3, do_sample=False).shape[1] == inputs["input_ids"].shape[1] + 3

    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["s2_scales"] == [64, 128]
    loaded, loaded_processor = AutoModelForImageTextToText.from_pretrained(tmp_path).eval(), AutoProcessor.from_pretrained(tmp_path)
    assert isinstance(loaded.vision_tower, S2Encoder)
    again = loaded_processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                 return_dict=True, return_tensors="pt", images=images[:1])
    assert torch.equal(inputs["pixel_values"], again["pixel_values"])
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, loaded(**again).logits)
