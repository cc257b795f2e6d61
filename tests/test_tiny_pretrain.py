"""Self-training a tiny encoder on the shapes world: exact cell targets, conv and ViT feature layouts,
a short deterministic run that learns and saves a folder loading like any checkpoint. (The
full-length build behind the embedded default is measured by the recipe run, not here.)"""

import json

import numpy as np
import pytest
import torch
from transformers import AutoImageProcessor, AutoModel

from vlm.shapes.cells import cell_targets
from vlm.shapes.world import COLOURS, PAIRS, SHAPES, Obj, Scene, generate_scene
from vlm.tiny.backbone import tiny_path
from vlm.tiny.pretrain_vision import PretrainConfig, grid_features, pretrain_patch_labels


def test_label_map_covers_exactly_the_drawn_pixels():
    scene = generate_scene(7)
    drawn = np.asarray(scene.render(128)) != np.asarray(Scene(7).render(128))
    labels = np.asarray(scene.label_map(128))
    assert np.array_equal(drawn.any(-1), labels > 0)
    for obj in scene.objects:
        x1, y1, x2, y2 = (int(v * 128) for v in obj.box)
        inside = labels[y1:y2, x1:x2]
        assert set(np.unique(inside)) <= {0, 1 + PAIRS.index((obj.colour, obj.shape))}


def test_cell_targets_by_hand():
    big = Obj("blue", "square", "large", (0.0, 0.0, 0.5, 0.5))  # fills the top-left quarter
    speck = Obj("red", "circle", "tiny", (0.9, 0.9, 0.92, 0.92))  # 2x2 px at 100 px: under min_pixels
    classes, boxes = cell_targets(Scene(0, [big, speck]), size=100, side=2, min_pixels=8)
    blue, square, circle = 1 + list(COLOURS).index("blue"), 1 + SHAPES.index("square"), 1 + SHAPES.index("circle")
    # colour and shape of the covering object, shape of the centred one; the speck covers too little
    assert classes.tolist() == [[blue, square, square], [0, 0, 0], [0, 0, 0], [0, 0, circle]]
    assert boxes.tolist() == [[0.0, 0.0, 0.5, 0.5], [0.0] * 4, [0.0] * 4, [0.0] * 4]


@pytest.mark.parametrize(("key", "cells"), [("tiny-convnext", 64), ("tiny-clip", 64), ("tiny-dinov2", 64)])
def test_grid_features_drop_prefix_tokens(key, cells):
    model = AutoModel.from_pretrained(tiny_path(key))
    size = model.config.image_size
    features = grid_features(model, torch.zeros(2, 3, size, size))
    assert features.shape[:2] == (2, cells)


def test_short_vision_pretraining_learns_and_is_deterministic(tmp_path):
    config = PretrainConfig(steps=60, batch_size=16, lr=3e-3, eval_images=64)
    report = pretrain_patch_labels(tiny_path("tiny-clip"), tmp_path / "a", config)
    assert report["last_loss"] < 0.7 * report["first_loss"]
    assert report["val_accuracy"]["colour"] > 0.5  # 8 colours
    assert report["val_accuracy"]["box_l1"] < 0.25  # mean |error| of box coordinates in [0, 1]
    assert json.loads((tmp_path / "a" / "pretrain.json").read_text()) == report
    AutoImageProcessor.from_pretrained(tmp_path / "a")
    model, before = AutoModel.from_pretrained(tmp_path / "a"), AutoModel.from_pretrained(tiny_path("tiny-clip"))
    assert not torch.equal(model.embeddings.patch_embedding.weight, before.embeddings.patch_embedding.weight)
    pretrain_patch_labels(tiny_path("tiny-clip"), tmp_path / "b", PretrainConfig(steps=5, batch_size=4, eval_images=4))
    pretrain_patch_labels(tiny_path("tiny-clip"), tmp_path / "c", PretrainConfig(steps=5, batch_size=4, eval_images=4))
    assert (tmp_path / "b" / "model.safetensors").read_bytes() == (tmp_path / "c" / "model.safetensors").read_bytes()
