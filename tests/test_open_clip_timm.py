"""Encoders from open_clip and timm (and transformers' SigLIP2, ConvNeXtV2, layer lists): token grids
against real forwards, features against the libraries' own computations, sources and their errors,
and whole VLMs that build, generate, save and reload."""

import json
import shutil
import time

import numpy as np
import open_clip
import pytest
import timm
import torch
from huggingface_hub import constants
from safetensors.torch import load_file, save_file
from transformers import (
    AutoModel,
    AutoModelForImageTextToText,
    AutoProcessor,
    ConvNextV2Config,
    ConvNextV2Model,
)
from transformers.models.convnextv2.modeling_convnextv2 import ConvNextV2Layer

from vlm.build import BuildSpec, build
from vlm.config import VLMConfig
from vlm.hub import PartNotFoundError
from vlm.layout import tokens_per_image
from vlm.tiny.backbone import tiny_path
from vlm.tiny.backbones.open_clip import OPEN_CLIP_PREPROCESS
from vlm.vision.encoder import encoder_class
from vlm.vision.open_clip import OpenCLIPTimmEncoder, OpenCLIPViTEncoder
from vlm.vision.sources import vision_source
from vlm.vision.timm import TimmEncoder, TimmVisionConfig

STAGE5 = {"stage5_depth": 1, "stage5_hidden_size": 96}


def vlm_config(vision_config, **kw) -> VLMConfig:
    return VLMConfig(vision_config=vision_config, text_config={"model_type": "llama"}, **kw)


def encoder_of(ref: str, **kw):
    """The encoder a VLM would get for vision part ``ref``, with its source's weights, in eval mode."""
    source = vision_source(ref)
    config = vlm_config(source.config, **kw)
    return encoder_class(config)(config, pretrained=source.weights).eval(), config


def covers_each_parameter_once(encoder) -> bool:
    ids = [id(p) for block in encoder.blocks() for p in block.parameters()]
    return len(ids) == len(set(ids)) and set(ids) == {id(p) for p in encoder.parameters()}


# --- open_clip ViT ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def open_clip_reference():
    """The tiny ViT CLIP loaded by open_clip itself from its hub-style folder."""
    return open_clip.create_model(f"local-dir:{tiny_path('tiny-open_clip-vit')}").eval()


def vit_blocks_by_hand(visual, pixels):
    """Every block output of open_clip's VisionTransformer, computed step by step from its parts."""
    x = visual.conv1(pixels).flatten(2).transpose(1, 2)
    cls = visual.class_embedding.expand(x.shape[0], 1, -1)
    x = visual.ln_pre(torch.cat([cls, x], dim=1) + visual.positional_embedding)
    outputs = []
    for block in visual.transformer.resblocks:
        x = block(x)
        outputs.append(x)
    return outputs


@pytest.mark.parametrize("layer, strategy", [(-2, "default"), (-1, "full"), ([1, -1], "default"), ([3, 1], "full")])
def test_open_clip_vit_layers_equal_its_blocks_by_hand(open_clip_reference, layer, strategy):
    encoder, config = encoder_of("tiny-open_clip-vit", vision_feature_layer=layer,
                                 vision_feature_select_strategy=strategy)
    assert isinstance(encoder, OpenCLIPViTEncoder)
    pixels = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        blocks = vit_blocks_by_hand(open_clip_reference.visual, pixels)
        out = encoder(pixels)
    drop = 1 if strategy == "default" else 0
    layers = [layer] if isinstance(layer, int) else layer
    expected = torch.cat([blocks[i - 1 if i > 0 else i][:, drop:] for i in layers], dim=-1)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    assert out.shape == (2, tokens_per_image(config), encoder.out_channels(config))


@pytest.mark.parametrize("size", [32, 64, 96])
def test_open_clip_vit_grid_is_what_it_produces(size):
    source = vision_source("tiny-open_clip-vit")
    source.config.image_size = size  # vision_overrides={"image_size": size}: the tower is rebuilt for it
    config = vlm_config(source.config)
    encoder = OpenCLIPViTEncoder(config, pretrained=source.weights).eval()
    with torch.no_grad():
        out = encoder(torch.randn(1, 3, size, size))
    assert encoder.grid(config, size) == (size // 8, size // 8)
    assert out.shape[1] == tokens_per_image(config) == (size // 8) ** 2
    assert encoder.visual.positional_embedding.shape[0] == (size // 8) ** 2 + 1  # interpolated by open_clip


def test_open_clip_vit_other_size_is_refused_clearly():
    source = vision_source("tiny-open_clip-vit")
    with pytest.raises(ValueError, match=r"position embeddings for 64 px, not 96.*vision_overrides"):
        tokens_per_image(vlm_config(source.config, image_size=96))


def test_open_clip_named_with_a_checkpoint_file(tmp_path):
    """``open_clip:NAME@file``: a registered model config, weights from a .bin (torch.load, weights only)."""
    folder = tiny_path("tiny-open_clip-vit")
    model_cfg = json.loads((folder / "open_clip_config.json").read_text())["model_cfg"]
    (tmp_path / "vlm-test-vit.json").write_text(json.dumps(model_cfg))
    open_clip.add_model_config(tmp_path / "vlm-test-vit.json")
    torch.save(load_file(folder / "open_clip_model.safetensors"), tmp_path / "epoch_1.bin")
    named, _ = encoder_of(f"open_clip:vlm-test-vit@{tmp_path / 'epoch_1.bin'}")
    from_folder, _ = encoder_of("tiny-open_clip-vit")
    pixels = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(named(pixels), from_folder(pixels))
    assert vision_source("open_clip:vlm-test-vit").weights is None  # no checkpoint: random


# --- open_clip ConvNeXt (a timm trunk) and ConvLLaVA's fifth stage --------------------------------------


@pytest.mark.parametrize("size", [128, 160, 256])
def test_open_clip_convnext_features_are_the_trunks_last_map(size):
    encoder, config = encoder_of("tiny-open_clip-convnext", vision_feature_layer=-1, image_size=size)
    assert isinstance(encoder, OpenCLIPTimmEncoder) and encoder.num_prefix_tokens(config) == 0
    reference = open_clip.create_model(f"local-dir:{tiny_path('tiny-open_clip-convnext')}").eval()
    pixels = torch.randn(2, 3, size, size)
    with torch.no_grad():
        expected = reference.visual.trunk.forward_features(pixels)  # stem + stages (+ identity norm_pre)
        out = encoder(pixels)
    assert expected.shape[2:] == encoder.grid(config, size) == (size // 32, size // 32)
    torch.testing.assert_close(out, expected.flatten(2).transpose(1, 2), rtol=1e-5, atol=1e-5)  # row-major
    assert out.shape == (2, tokens_per_image(config), 64)


def stage5_config(**kw) -> VLMConfig:
    vision = vision_source("tiny-open_clip-convnext").config
    for key, value in STAGE5.items():
        setattr(vision, key, value)
    return vlm_config(vision, vision_feature_layer=-1, **kw)


@pytest.mark.parametrize("size, tokens", [(768, 144), (1024, 256), (1536, 576)])
def test_stage5_gives_stride_64(size, tokens):
    config = stage5_config()
    assert encoder_class(config) is OpenCLIPTimmEncoder
    assert tokens_per_image(config, size) == tokens


@pytest.mark.parametrize("size", [128, 256])
def test_stage5_forward_on_the_trunk(size):
    config = stage5_config(image_size=size)
    source = vision_source("tiny-open_clip-convnext")
    encoder = OpenCLIPTimmEncoder(config, pretrained=source.weights).eval()
    assert isinstance(encoder.stage5, timm.models.convnext.ConvNeXtStage)
    assert isinstance(encoder.stage5.downsample[1], torch.nn.Conv2d) and encoder.stage5.downsample[1].stride == (2, 2)
    pixels = torch.randn(1, 3, size, size)
    with torch.no_grad():
        expected = encoder.stage5(encoder.visual.trunk.forward_features(pixels))
        out = encoder(pixels)
    assert expected.shape == (1, 96, size // 64, size // 64)
    assert out.shape == (1, tokens_per_image(config), encoder.out_channels(config)) == (1, (size // 64) ** 2, 96)
    assert torch.equal(out, expected.flatten(2).transpose(1, 2))


def test_stage5_blocks_and_deterministic_init():
    a, b = OpenCLIPTimmEncoder(stage5_config()), OpenCLIPTimmEncoder(stage5_config())
    pairs = zip(a.stage5.state_dict().values(), b.stage5.state_dict().values(), strict=True)
    assert all(torch.equal(x, y) for x, y in pairs)
    blocks = a.blocks()
    assert len(blocks) == 5 and blocks[-1] is a.stage5  # ConvLLaVA's from:3 and from:5 address these
    assert blocks[1] is a.visual.trunk.stages[1]
    assert covers_each_parameter_once(a)


def test_stage5_takes_only_its_own_output():
    config = stage5_config()
    config.vision_feature_layer = -2
    with pytest.raises(ValueError, match="vision_feature_layer=-1"):
        OpenCLIPTimmEncoder(config)


# --- timm ---------------------------------------------------------------------------------------------


def vit_by_hand(model, pixels):
    """Every block output of a timm VisionTransformer, from its parts."""
    x = model.norm_pre(model.patch_drop(model._pos_embed(model.patch_embed(pixels))))
    outputs = []
    for block in model.blocks:
        x = block(x)
        outputs.append(x)
    return outputs


@pytest.mark.parametrize("size", [48, 64, 96])
@pytest.mark.parametrize("layer, strategy", [(-2, "default"), ([2, -1], "full")])
def test_timm_vit_equals_its_blocks_by_hand(size, layer, strategy):
    encoder, config = encoder_of("tiny-timm-vit", vision_feature_layer=layer, vision_feature_select_strategy=strategy,
                                 image_size=size)  # test_vit takes any size (dynamic_img_size)
    reference = timm.create_model(f"local-dir:{tiny_path('tiny-timm-vit')}", pretrained=True).eval()
    pixels = torch.randn(2, 3, size, size)
    with torch.no_grad():
        blocks = vit_by_hand(reference, pixels)
        out = encoder(pixels)
    drop = 1 if strategy == "default" else 0
    layers = [layer] if isinstance(layer, int) else layer
    torch.testing.assert_close(out, torch.cat([blocks[i - 1 if i > 0 else i][:, drop:] for i in layers], dim=-1))
    assert encoder.grid(config, size) == (size // 8, size // 8)
    assert out.shape == (2, tokens_per_image(config), encoder.out_channels(config))
    assert covers_each_parameter_once(encoder) and len(encoder.blocks()) == 6


def test_timm_registers_are_prefix_tokens():
    vision = TimmVisionConfig(architecture="test_vit", model_args={"img_size": 64, "patch_size": 8, "reg_tokens": 2},
                              image_size=64)
    for strategy, tokens in (("default", 64), ("full", 64 + 1 + 2)):
        config = vlm_config(vision, vision_feature_layer=-1, vision_feature_select_strategy=strategy)
        encoder = TimmEncoder(config).eval()
        with torch.no_grad():
            out = encoder(torch.randn(1, 3, 64, 64))
            last = vit_by_hand(encoder.model, torch.zeros(1, 3, 64, 64))[-1]
        assert encoder.num_prefix_tokens(config) == 3 and out.shape[1] == tokens_per_image(config) == tokens
        if strategy == "default":
            torch.testing.assert_close(encoder(torch.zeros(1, 3, 64, 64)), last[:, 3:])


@pytest.mark.parametrize("architecture, size, grid", [("test_convnext", 96, (3, 3)), ("test_resnet", 161, (6, 6)),
                                                      ("test_resnet", 64, (2, 2))])
def test_timm_cnn_last_map_at_any_size(architecture, size, grid):
    config = vlm_config(TimmVisionConfig(architecture=architecture, image_size=size), vision_feature_layer=-1)
    encoder = TimmEncoder(config).eval()
    pixels = torch.randn(1, 3, size, size)
    with torch.no_grad():
        expected = encoder.model.forward_features(pixels)
        out = encoder(pixels)
    assert encoder.grid(config, size) == grid == tuple(expected.shape[2:])  # ResNet rounds up: 161 px -> 6
    assert torch.equal(out, expected.flatten(2).transpose(1, 2))


def test_timm_layers_of_different_grids_are_refused():
    config = vlm_config(TimmVisionConfig(architecture="test_convnext", image_size=128), vision_feature_layer=[-2, -1])
    with pytest.raises(ValueError, match="different grids"):
        tokens_per_image(config)


def test_timm_named_with_a_checkpoint_drops_the_classifier(tmp_path):
    reference = timm.create_model("test_convnext", pretrained=False).eval()  # with its 1000-class head
    save_file(reference.state_dict(), tmp_path / "weights.safetensors")
    encoder, config = encoder_of(f"timm:test_convnext@{tmp_path / 'weights.safetensors'}", vision_feature_layer=-1)
    pixels = torch.randn(1, 3, 160, 160)
    with torch.no_grad():
        torch.testing.assert_close(encoder(pixels), reference.forward_features(pixels).flatten(2).transpose(1, 2))
    assert config.image_size == 160 and encoder.model.num_classes == 0


def test_timm_convnext_takes_a_fifth_stage():
    vision = TimmVisionConfig(architecture="test_convnext", image_size=256, **STAGE5)
    config = vlm_config(vision, vision_feature_layer=-1)
    encoder = TimmEncoder(config).eval()
    with torch.no_grad():
        out = encoder(torch.randn(1, 3, 256, 256))
    assert out.shape == (1, 16, 96) and tokens_per_image(config, 768) == 144
    with pytest.raises(ValueError, match="extends a ConvNeXt"):
        TimmEncoder(vlm_config(TimmVisionConfig(architecture="test_resnet", **STAGE5), vision_feature_layer=-1))


# --- transformers families ------------------------------------------------------------------------------


def test_siglip2_on_a_fixed_grid_equals_its_naflex_inputs():
    from PIL import Image
    from transformers import Siglip2ImageProcessor, Siglip2VisionConfig

    vision = Siglip2VisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                 patch_size=8, num_patches=64)
    config = vlm_config(vision, image_size=64)
    encoder = encoder_class(config)(config).eval()
    image = Image.fromarray(torch.randint(0, 256, (64, 64, 3), dtype=torch.uint8).numpy())
    naflex = Siglip2ImageProcessor(patch_size=8, max_num_patches=64)(image, return_tensors="pt")
    assert naflex["spatial_shapes"].tolist() == [[8, 8]]
    pixels = (torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255 - 0.5) / 0.5
    with torch.no_grad():
        expected = encoder.model(**naflex, output_hidden_states=True).hidden_states[-2]
        torch.testing.assert_close(encoder(pixels[None]), expected, rtol=1e-5, atol=1e-5)
    assert tokens_per_image(config) == 64 and tokens_per_image(config, 128) == 256  # no prefix token


def test_convnextv2_features_then_stage5():
    vision = dict(model_type="convnextv2", patch_size=4, hidden_sizes=[4, 4, 4, 8], depths=[1, 1, 1, 1],
                  stage5_depth=1, stage5_hidden_size=12)
    config = vlm_config(vision, vision_feature_layer=-1, image_size=128)
    encoder = encoder_class(config)(config).eval()
    reference = ConvNextV2Model(ConvNextV2Config(patch_size=4, hidden_sizes=[4, 4, 4, 8], depths=[1, 1, 1, 1])).eval()
    reference.load_state_dict(encoder.model.state_dict())
    pixels = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        expected = encoder.stage5(reference(pixel_values=pixels, output_hidden_states=True).hidden_states[-1])
        out = encoder(pixels)
    assert torch.equal(out, expected.flatten(2).transpose(1, 2)) and out.shape == (1, 4, 12)
    assert isinstance(encoder.stage5.layers[0], ConvNextV2Layer)


@pytest.mark.parametrize("layers, strategy", [([-2, -1], "default"), ([3, 1], "full"), ([-1, -1], "default")])
def test_transformers_vit_layer_lists(layers, strategy):
    source = vision_source("tiny-clip")
    config = vlm_config(source.config, vision_feature_layer=layers, vision_feature_select_strategy=strategy)
    encoder = encoder_class(config)(config, pretrained=source.weights).eval()
    reference = AutoModel.from_pretrained(tiny_path("tiny-clip")).eval()
    pixels = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        hidden = reference(pixel_values=pixels, output_hidden_states=True).hidden_states
        out = encoder(pixels)
    drop = 1 if strategy == "default" else 0
    torch.testing.assert_close(out, torch.cat([hidden[i][:, drop:] for i in layers], dim=-1))
    assert out.shape == (2, tokens_per_image(config), encoder.out_channels(config)) == (2, 65 - drop, 64 * len(layers))


# --- sources: precedence and errors -----------------------------------------------------------------------


def test_folder_precedence_and_explicit_kind(tmp_path):
    """laion's ViT repos hold transformers and open_clip files: the plain folder reads as transformers."""
    folder = tmp_path / "both"
    shutil.copytree(tiny_path("tiny-clip"), folder)
    for name in ("open_clip_config.json", "open_clip_model.safetensors"):
        shutil.copy(tiny_path("tiny-open_clip-vit") / name, folder)
    assert vision_source(str(folder)).config.model_type == "clip_vision_model"
    assert vision_source(f"open_clip:local-dir:{folder}").config.model_type == "open_clip_vision"
    assert vision_source(f"timm:local-dir:{tiny_path('tiny-timm-vit')}").config.model_type == "timm_vision"


def test_missing_checkpoints_are_named(tmp_path):
    for ref in (f"open_clip:ViT-B-32@{tmp_path / 'nope.pt'}", f"timm:test_vit@{tmp_path / 'nope.safetensors'}"):
        with pytest.raises(PartNotFoundError, match=r"checkpoint for .*no file at .*nope\."):
            vision_source(ref)
    (tmp_path / "open_clip_config.json").write_text(json.dumps({"model_cfg": {}}))
    with pytest.raises(PartNotFoundError, match="open_clip_model.safetensors, open_clip_pytorch_model.bin"):
        vision_source(str(tmp_path))


def test_unknown_kinds_names_and_folders_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"unknown vision source kind 'openclip'.*open_clip, timm, transformers"):
        vision_source("openclip:ViT-B-32")
    with pytest.raises(ValueError, match="open_clip has no built-in model 'ViT-Q-99'"):
        vision_source("open_clip:ViT-Q-99")
    with pytest.raises(ValueError, match="timm has no architecture 'no_such_net'"):
        vision_source("timm:no_such_net")
    with pytest.raises(PartNotFoundError, match=r"open_clip_config.json \(open_clip\).*architecture \(timm\)"):
        vision_source(str(tmp_path))


def test_paper_preset_encoder_fails_fast_offline():
    from vlm.recipes.base import RECIPES

    paper = RECIPES.get("llava_convnext").presets["paper"]
    vision = paper.model.vision
    assert vision == "open_clip:hf-hub:laion/CLIP-convnext_large_d_320.laion2B-s29B-b131K-ft-soup"
    start = time.monotonic()
    with pytest.raises(PartNotFoundError) as info:
        build(paper.model)
    assert time.monotonic() - start < 10
    message = str(info.value)
    assert "laion/CLIP-convnext_large_d_320.laion2B-s29B-b131K-ft-soup" in message
    assert str(constants.HF_HUB_CACHE) in message and "offline" in message


# --- whole VLMs ------------------------------------------------------------------------------------------


VLMS = {
    "tiny-open_clip-vit": (dict(), 64, OPEN_CLIP_PREPROCESS["mean"]),
    "tiny-timm-vit": (dict(), 64, [0.5, 0.5, 0.5]),
    "tiny-open_clip-convnext": (dict(vision_feature_layer=-1, vision_overrides=STAGE5), 16,
                                OPEN_CLIP_PREPROCESS["mean"]),
    "tiny-open_clip-vit+tiny-siglip": (dict(), 64, [0.0, 0.0, 0.0]),
}


@pytest.mark.parametrize("vision", sorted(VLMS))
def test_vlm_builds_generates_and_reloads(vision, tmp_path, images):
    kw, tokens, mean = VLMS[vision]
    model, processor = build(BuildSpec(vision=vision, llm="tiny-llama", template="llama3", **kw))
    model.eval()
    assert model.config.image_seq_length == tokens
    assert processor.image_processor.image_mean == pytest.approx(mean)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What shape?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(text=[text], images=[images[1]], return_tensors="pt")
    with torch.no_grad():
        out = model(**inputs, labels=inputs["input_ids"])
        generated = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert torch.isfinite(out.loss) and generated.shape[1] == inputs["input_ids"].shape[1] + 3

    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    loaded = AutoModelForImageTextToText.from_pretrained(tmp_path).eval()
    reloaded = AutoProcessor.from_pretrained(tmp_path)(text=[text], images=[images[1]], return_tensors="pt")
    assert torch.equal(reloaded["pixel_values"], inputs["pixel_values"])
    with torch.no_grad():
        assert torch.equal(loaded(**inputs).logits, out.logits)
