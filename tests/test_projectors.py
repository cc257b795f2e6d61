"""Token-compressing projectors: declared token counts, numerics against plain loops, and whole VLMs."""

import math

import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from vlm.build import BuildSpec, build
from vlm.config import VLMConfig
from vlm.layout import tokens_per_image
from vlm.projectors.base import PROJECTORS
from vlm.tiny.backbone import tiny_path
from vlm.vision.hf import load_vision_config

COMPRESSING = ["pool2x2", "pixel_shuffle", "ldp", "resampler", "resampler16"]
GRIDS = [(8, 8), (7, 7), (5, 3), (2, 6), (1, 1)]


def make(key: str, grid: tuple[int, int], in_dim: int = 12, out_dim: int = 16):
    return PROJECTORS.get(key)(in_dim, out_dim, grid=grid).eval()


@pytest.mark.parametrize("key", COMPRESSING + ["mlp2x_gelu"])
@pytest.mark.parametrize("grid", GRIDS)
def test_output_shape_is_the_declared_token_count(key, grid):
    tokens_in = grid[0] * grid[1]
    out = make(key, grid)(torch.randn(2, tokens_in, 12))
    assert out.shape == (2, PROJECTORS.get(key).num_tokens(tokens_in, grid), 16)
    expected = {"resampler": 64, "resampler16": 16, "mlp2x_gelu": tokens_in}
    assert out.shape[1] == expected.get(key, math.ceil(grid[0] / 2) * math.ceil(grid[1] / 2))


def blocks(grid):
    """((i, j), [(dy, dx, token index), ...]) for every 2x2 block, clipped at the grid's edge."""
    rows, cols = grid
    for i in range(math.ceil(rows / 2)):
        for j in range(math.ceil(cols / 2)):
            inside = [(dy, dx, (2 * i + dy) * cols + 2 * j + dx) for dy in (0, 1) for dx in (0, 1)
                      if 2 * i + dy < rows and 2 * j + dx < cols]
            yield (i, j), inside


@pytest.mark.parametrize("grid", [(4, 6), (5, 3), (1, 1)])
def test_pool2x2_is_the_mean_of_each_block(grid):
    projector, x = make("pool2x2", grid), torch.randn(2, grid[0] * grid[1], 12)
    reduced_cols = math.ceil(grid[1] / 2)
    expected = torch.zeros(2, math.ceil(grid[0] / 2) * reduced_cols, 12)
    for (i, j), inside in blocks(grid):
        expected[:, i * reduced_cols + j] = sum(x[:, t] for _, _, t in inside) / len(inside)
    torch.testing.assert_close(projector.compress(x), expected)
    with torch.no_grad():
        torch.testing.assert_close(projector(x), projector.mlp(expected))


@pytest.mark.parametrize("grid", [(4, 6), (5, 3)])
def test_pixel_shuffle_concatenates_each_block(grid):
    projector, x = make("pixel_shuffle", grid), torch.randn(2, grid[0] * grid[1], 12)
    reduced_cols = math.ceil(grid[1] / 2)
    expected = torch.zeros(2, math.ceil(grid[0] / 2) * reduced_cols, 4 * 12)  # missing tokens stay zero
    for (i, j), inside in blocks(grid):
        for dy, dx, t in inside:
            for k in range(12):
                expected[:, i * reduced_cols + j, 4 * k + 2 * dy + dx] = x[:, t, k]
    assert torch.equal(projector.compress(x), expected)
    with torch.no_grad():
        torch.testing.assert_close(projector(x), projector.mlp(projector.norm(expected)))


def test_ldp_is_mobilevlm_v1():
    projector = make("ldp", (8, 8))
    depthwise = [m for m in projector.blocks.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    assert [(c.stride, c.groups, c.in_channels) for c in depthwise] == [((1, 1), 16, 16), ((2, 2), 16, 16)]
    assert [b.use_res_connect for b in projector.blocks] == [True, False]
    assert [type(b.block[1]).__name__ for b in projector.blocks] == ["SqueezeExcitation"] * 2


def test_resampler_ignores_token_order_and_accepts_prefix_tokens():
    projector = make("resampler16", (8, 8))
    x = torch.randn(2, 65, 12)  # CLS + 64 patches: the resampler needs no grid
    with torch.no_grad():
        out, shuffled = projector(x), projector(x[:, torch.randperm(65)])
    assert out.shape == (2, 16, 16)
    torch.testing.assert_close(out, shuffled, rtol=1e-5, atol=1e-5)  # no positions: attention is a set op
    assert not torch.allclose(out[0], out[1])


@pytest.mark.parametrize("key", ["pool2x2", "pixel_shuffle", "ldp"])
def test_spatial_projectors_refuse_prefix_tokens_and_missing_grids(key):
    config = VLMConfig(vision_config=load_vision_config(str(tiny_path("tiny-clip"))), text_config={"model_type": "llama"},
                       projector_type=key, vision_feature_select_strategy="full")
    with pytest.raises(ValueError, match=r"8x8=64 patch tokens, got 65 \(1 prefix tokens .*use 'default'"):
        tokens_per_image(config)
    with pytest.raises(ValueError, match="grid=\\(rows, cols\\)"):
        PROJECTORS.get(key)(12, 16)
    with pytest.raises(ValueError, match="got 63"):
        make(key, (8, 8))(torch.randn(1, 63, 12))


def test_ldp_needs_a_width_divisible_by_8():
    with pytest.raises(ValueError, match="divisible by 8, got 12"):
        make("ldp", (8, 8), out_dim=12)


def ask(processor, images):
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is it?"}]}]
    return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True,
                                         return_tensors="pt", images=images)


@pytest.mark.parametrize("key, vision, image_size, tokens", [
    ("pool2x2", "tiny-clip", None, 16),
    ("pixel_shuffle", "tiny-clip", None, 16),
    ("ldp", "tiny-clip", None, 16),
    ("resampler16", "tiny-clip", None, 16),
    ("pool2x2", "tiny-convnext", 224, 16),  # a 7x7 grid, ceil-pooled
])
def test_vlm_with_projector_generates_and_reloads(key, vision, image_size, tokens, images, tmp_path):
    layer = -1 if vision == "tiny-convnext" else -2
    model, processor = build(BuildSpec(vision=vision, projector=key, llm="tiny-llama", image_size=image_size,
                                       vision_feature_layer=layer))
    model.eval()
    inputs = ask(processor, images[:1])
    assert model.config.image_seq_length == tokens == processor.image_seq_length
    assert int((inputs["input_ids"] == model.config.image_token_id).sum()) == tokens
    assert model.get_image_features(inputs["pixel_values"]).shape[1] == tokens
    generated = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert generated.shape[1] == inputs["input_ids"].shape[1] + 3
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    loaded = AutoModelForImageTextToText.from_pretrained(tmp_path).eval()
    reloaded_inputs = ask(AutoProcessor.from_pretrained(tmp_path), images[:1])
    assert torch.equal(inputs["input_ids"], reloaded_inputs["input_ids"])
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, loaded(**reloaded_inputs).logits)
