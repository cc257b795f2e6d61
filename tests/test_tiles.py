"""NVLM-D 1-D tile tags: tile-grid choice, tile order with the thumbnail last, plain-text tags in
order before each tile's tokens, and per-image token counts the model agrees with."""

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor
from transformers.models.got_ocr2.image_processing_got_ocr2 import get_optimal_tiled_canvas

from vlm.highres.tiles import THUMBNAIL_TAG, tile_grid, tile_tags
from vlm.layout import ImageLayout

SIZES = [(h, w) for h in (13, 48, 64, 100, 131, 257) for w in (9, 40, 64, 80, 150, 333)]  # (height, width)


@pytest.fixture(scope="module")
def tiles(built_models):
    path = built_models(high_res="tiles")
    return AutoModelForImageTextToText.from_pretrained(path).eval(), AutoProcessor.from_pretrained(path)


def picture(height: int, width: int) -> Image.Image:
    rng = np.random.default_rng(height * 1000 + width)
    return Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8))


def prompt(processor, n_images: int = 1) -> str:
    content = [{"type": "image"}] * n_images + [{"type": "text", "text": "What is it?"}]
    return processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((48, 80), (2, 3)),  # aspect 5/3: 3x2 (1.5) is closest among grids of at most 6 tiles
        ((64, 64), (1, 1)),  # 2x2 ties 1x1 on aspect, but the image is under half of 2x2's 4 tiles of area
        ((200, 200), (2, 2)),  # ... while this one is over half: the larger grid wins the tie
        ((60, 200), (1, 3)),
        ((1000, 10), (6, 1)),  # very tall: as tall as 6 tiles allow
    ],
)
def test_tile_grid_worked_by_hand(size, expected):
    assert tile_grid(size, 64, 6) == expected
    cols, rows = get_optimal_tiled_canvas(size, (64, 64), 1, 6)  # transformers' InternVL tiling
    assert (rows, cols) == expected


def test_tile_grid_matches_transformers_for_many_sizes():
    for max_tiles in (1, 4, 6, 12):
        for h in range(1, 700, 23):
            for w in range(1, 700, 29):
                cols, rows = get_optimal_tiled_canvas((h, w), (64, 64), 1, max_tiles)
                assert tile_grid((h, w), 64, max_tiles) == (rows, cols), (h, w, max_tiles)


def test_tiles_row_major_then_thumbnail(tiles):
    _, processor = tiles
    colours = torch.tensor([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [0, 255, 255], [255, 0, 255]])
    canvas = np.zeros((128, 192, 3), dtype=np.uint8)  # 2 rows x 3 columns of 64 px blocks: a 3x2 grid, no resize
    for i, colour in enumerate(colours.tolist()):
        canvas[(i // 3) * 64 : (i // 3 + 1) * 64, (i % 3) * 64 : (i % 3 + 1) * 64] = colour
    out = processor(images=[Image.fromarray(canvas)], text=[prompt(processor)], return_tensors="pt")
    ip = processor.image_processor
    mean, std = torch.tensor(ip.image_mean).view(3, 1, 1), torch.tensor(ip.image_std).view(3, 1, 1)
    pixels = (out["pixel_values"] * std + mean) * 255
    assert pixels.shape == (7, 3, 64, 64) and out["image_sizes"].tolist() == [[128, 192]]
    assert "num_patches" not in out  # the tile count travels as image_sizes
    for tile, colour in zip(pixels[:6], colours, strict=True):
        assert torch.allclose(tile.mean((1, 2)), colour.float(), atol=1.0)
    thumbnail = pixels[6]  # the whole image at 64 px: the top-left block's colour at its top-left
    assert torch.allclose(thumbnail[:, 4, 4], colours[0].float(), atol=2.0)
    assert torch.allclose(thumbnail[:, 60, 60], colours[5].float(), atol=2.0)


def _segments(ids: torch.Tensor, image_token_id: int) -> tuple[list[list[int]], list[int]]:
    """Text between image runs, and the run lengths."""
    texts, runs, current, run = [], [], [], 0
    for token in ids.tolist():
        if token == image_token_id:
            run += 1
            continue
        if run:
            texts.append(current)
            runs.append(run)
            current, run = [], 0
        current.append(token)
    if run:
        texts.append(current)
        runs.append(run)
    return texts, runs


@pytest.mark.parametrize(
    ("size", "expected_tags"),
    [
        ((48, 80), [f"<tile_{i}>" for i in range(1, 7)] + ["<tile_global_thumbnail>"]),
        ((60, 200), ["<tile_1>", "<tile_2>", "<tile_3>", "<tile_global_thumbnail>"]),
        ((64, 64), ["<tile_global_thumbnail>"]),  # one tile is the whole image: NVLM-D tags it as the thumbnail
    ],
)
def test_tags_are_ordinary_text_in_order(tiles, size, expected_tags):
    model, processor = tiles
    tokenizer = processor.tokenizer
    batch = processor(images=[picture(*size)], text=[prompt(processor)], return_tensors="pt")
    texts, runs = _segments(batch["input_ids"][0], processor.image_token_id)
    assert tile_tags(processor.layout.tile_count(size)) == expected_tags and expected_tags[-1] == THUMBNAIL_TAG
    assert runs == [model.config.image_seq_length] * len(expected_tags)
    special = set(tokenizer.all_special_ids) | set(tokenizer.get_added_vocab().values())
    plain = [tokenizer(tag, add_special_tokens=False)["input_ids"] for tag in expected_tags]
    assert texts[0][-len(plain[0]) :] == plain[0]  # the first tag closes the text before the image
    assert texts[1:] == plain[1:]  # later tags sit alone between runs, tokenized as plain text
    assert not special & {t for tag in plain for t in tag}
    decoded = tokenizer.decode(batch["input_ids"][0]).replace(processor.image_token, "")
    positions = [decoded.index(tag) for tag in expected_tags]
    assert positions == sorted(positions)


def test_token_counts_agree_everywhere(tiles):
    model, processor = tiles
    images = [picture(h, w) for h, w in SIZES]
    text = prompt(processor)
    batch = processor(images=images, text=[text] * len(images), padding=True, return_tensors="pt")
    placeholders = (batch["input_ids"] == processor.image_token_id).sum(1).tolist()
    with torch.no_grad():
        features = model.image_features(batch["pixel_values"], batch["image_sizes"])
    for i, (h, w) in enumerate(SIZES):
        rows, cols = get_optimal_tiled_canvas((h, w), (64, 64), 1, 6)
        tiles_with_thumbnail = rows * cols + (1 if rows * cols > 1 else 0)
        expected = processor.layout.num_tokens((h, w))
        assert placeholders[i] == expected == features[i].shape[0] == tiles_with_thumbnail * 64, (h, w)
    assert batch["pixel_values"].shape[0] == sum(processor.layout.tile_count(s) for s in SIZES)


def test_each_run_gets_its_own_tile(tiles):
    """The k-th placeholder run holds the k-th tile's projected features (tags sit between runs)."""
    model, processor = tiles
    batch = processor(images=[picture(48, 80), picture(60, 200)], text=[prompt(processor, 2)], return_tensors="pt")
    ids = batch["input_ids"]
    with torch.no_grad():
        embeds = model._scatter_image_features(
            ids, model.get_input_embeddings()(ids), batch["pixel_values"], batch["image_sizes"]
        )
        per_tile = model.get_image_features(batch["pixel_values"])
    image_rows = embeds[0][ids[0] == processor.image_token_id]
    assert torch.equal(image_rows, per_tile.flatten(0, 1))
    assert per_tile.shape[0] == 7 + 4  # 3x2 tiles + thumbnail, 3x1 tiles + thumbnail


def test_most_tokens_bounds_every_size():
    layout = ImageLayout("tiles", tile_size=64, tile_tokens=16, max_tiles=6)
    assert layout.most_tokens() == 7 * 16
    assert max(layout.num_tokens(s) for s in SIZES) == layout.most_tokens()
    assert ImageLayout("tiles", tile_size=64, tile_tokens=16, max_tiles=1).num_tokens((50, 500)) == 16
    with pytest.raises(ValueError, match="max_tiles must be a positive integer"):
        ImageLayout("tiles", tile_size=64, tile_tokens=16, max_tiles=0)
