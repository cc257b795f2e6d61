"""LLaVA-NeXT anyres: grid choice, tile order, unpadding, per-image token counts, training and
generation on mixed aspect ratios, and exact export to transformers' LlavaNext."""

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import (
    AutoModelForImageTextToText,
    AutoProcessor,
    LlavaNextForConditionalGeneration,
    LlavaNextImageProcessor,
    LlavaNextProcessor,
)
from transformers.image_processing_utils import select_best_resolution
from transformers.models.llava_next.modeling_llava_next import unpad_image

from vlm.build import BuildSpec, build
from vlm.cli import main as cli
from vlm.data.collate import Collator, PackedCollator
from vlm.data.errors import BadSample
from vlm.data.example import Example
from vlm.data.tokenize import encode_example
from vlm.eval.generate import generate_answers
from vlm.export import NotExportableError, export_hf
from vlm.highres.anyres import Anyres, content_bounds, default_pinpoints, select_resolution
from vlm.layout import ImageLayout
from vlm.modeling import ImageTokenMismatchError

PINPOINTS_64 = [[64, 128], [128, 64], [128, 128], [192, 64], [64, 192]]
SIZES = [(h, w) for h in (13, 48, 64, 100, 131, 257) for w in (9, 40, 64, 80, 150, 333)]  # (height, width)


def load(path):
    return AutoModelForImageTextToText.from_pretrained(path).eval(), AutoProcessor.from_pretrained(path)


def picture(height: int, width: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed + height * 1000 + width)
    return Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8))


def chat(question: str = "What is it?", n_images: int = 1) -> list[dict]:
    content = [{"type": "image"}] * n_images + [{"type": "text", "text": question}]
    return [{"role": "user", "content": content}]


@pytest.fixture(scope="module")
def anyres(built_models):
    return load(built_models(high_res="anyres"))


def test_default_pinpoints_are_llava_next_scaled():
    assert default_pinpoints(336) == [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]]
    assert default_pinpoints(64) == PINPOINTS_64


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((64, 64), (64, 128)),  # every canvas keeps all 4096 px; 64x128 and 128x64 waste least, first listed wins
        ((48, 80), (64, 128)),  # 64x128 keeps all 3840 px (scale 4/3 -> 106x64) and wastes 4352, 128x128 12544
        ((300, 100), (192, 64)),  # scale 0.64 -> 64x192 = 12288 px kept; 128x64 keeps 42x128 = 5376
        ((1000, 1000), (128, 128)),  # the biggest square keeps the most
        ((80, 48), (128, 64)),
    ],
)
def test_grid_choice_worked_by_hand(size, expected):
    assert select_resolution(size, PINPOINTS_64) == expected
    assert tuple(select_best_resolution(size, PINPOINTS_64)) == expected


def test_grid_choice_matches_transformers_for_many_sizes():
    pinpoints = default_pinpoints(336)
    for h in range(1, 1500, 37):
        for w in range(1, 1500, 41):
            assert select_resolution((h, w), pinpoints) == tuple(select_best_resolution((h, w), pinpoints)), (h, w)


def test_tiles_row_major_after_the_thumbnail(anyres):
    _, processor = anyres
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]  # top-left, top-right, bottom-left, bottom-right
    canvas = np.zeros((128, 128, 3), dtype=np.uint8)
    for i, colour in enumerate(colours):
        canvas[(i // 2) * 64 : (i // 2 + 1) * 64, (i % 2) * 64 : (i % 2 + 1) * 64] = colour
    out = processor.image_processor(images=[Image.fromarray(canvas)], return_tensors="pt")
    assert out["image_sizes"].tolist() == [[128, 128]]
    ip = processor.image_processor
    mean, std = torch.tensor(ip.image_mean).view(3, 1, 1), torch.tensor(ip.image_std).view(3, 1, 1)
    tiles = (out["pixel_values"][0] * std + mean) * 255  # (1 + 2x2, 3, 64, 64) back in 0..255
    assert tiles.shape == (5, 3, 64, 64)
    for tile, colour in zip(tiles[1:], colours, strict=True):
        assert torch.allclose(tile.mean((1, 2)), torch.tensor(colour, dtype=torch.float), atol=1.0)
    thumbnail = tiles[0]  # the whole image at 64 px: each quadrant's colour in its quadrant
    assert torch.allclose(thumbnail[:, 8, 8], torch.tensor(colours[0], dtype=torch.float), atol=1.0)
    assert torch.allclose(thumbnail[:, 56, 56], torch.tensor(colours[3], dtype=torch.float), atol=1.0)


def _reference_assembly(tiles: torch.Tensor, size: tuple[int, int], layout: ImageLayout, newline: torch.Tensor):
    """Plain loops: walk the padded canvas row by row, keep what covers the image, end rows with newline."""
    height, width = size
    rows, cols = (p // layout.tile_size for p in select_best_resolution(size, [list(p) for p in layout.grid_pinpoints]))
    side = int(layout.tile_tokens**0.5)
    canvas_rows, canvas_cols = rows * side, cols * side
    if width / height > canvas_cols / canvas_rows:  # wide: bands of padding above and below
        content = int(round(height * canvas_cols / width, 7))
        top = (canvas_rows - content) // 2
        row_range, col_range = range(top, canvas_rows - top), range(canvas_cols)
    else:
        content = int(round(width * canvas_rows / height, 7))
        left = (canvas_cols - content) // 2
        row_range, col_range = range(canvas_rows), range(left, canvas_cols - left)
    out = list(tiles[0])
    for r in row_range:
        for c in col_range:
            tile = 1 + (r // side) * cols + c // side
            out.append(tiles[tile, (r % side) * side + c % side])
        out.append(newline)
    return torch.stack(out)


@pytest.mark.parametrize("size", [(48, 80), (80, 48), (300, 100), (64, 64), (131, 257), (200, 201)])
def test_unpad_and_newlines_numerics(size):
    layout = ImageLayout("anyres", tile_size=64, tile_tokens=16, grid_pinpoints=PINPOINTS_64)
    strategy = Anyres(layout)
    n_tiles = layout.tile_count(size)
    tiles = torch.randn(n_tiles, 16, 5)
    newline = torch.randn(5)
    got = strategy.assemble(tiles, size, newline)
    assert torch.equal(got, _reference_assembly(tiles, size, layout, newline))
    assert got.shape[0] == layout.num_tokens(size)
    # transformers' own unpadding of the same (channels, rows, cols) canvas keeps the same window
    rows, cols = strategy.grid(size)
    canvas = torch.zeros(1, rows * 4, cols * 4)
    kept_rows, kept_cols = content_bounds(size, (rows * 4, cols * 4))
    assert unpad_image(canvas, list(size)).shape[1:] == (kept_rows.stop - kept_rows.start, kept_cols.stop - kept_cols.start)


def test_token_counts_agree_everywhere(anyres):
    """Processor placeholders == layout count == transformers' LlavaNext count == model's assembled tokens."""
    model, processor = anyres
    hf = LlavaNextProcessor(
        image_processor=processor.image_processor,
        tokenizer=processor.tokenizer,
        patch_size=model.config.vision_config.patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
    )
    images = [picture(h, w) for h, w in SIZES]
    text = processor.apply_chat_template(chat(), add_generation_prompt=True)
    batch = processor(images=images, text=[text] * len(images), padding=True, return_tensors="pt")
    placeholders = (batch["input_ids"] == processor.image_token_id).sum(1).tolist()
    with torch.no_grad():
        features = model.image_features(batch["pixel_values"], batch["image_sizes"])
    for i, (h, w) in enumerate(SIZES):
        expected = processor.layout.num_tokens((h, w))
        assert placeholders[i] == expected == features[i].shape[0], (h, w)
        assert expected == hf._get_number_of_features(h, w, 64, 64) - 1, (h, w)  # HF's "default" drops CLS after
    assert batch["image_sizes"].tolist() == [[h, w] for h, w in SIZES]


def _examples(sizes: list[tuple[int, int]]) -> list[Example]:
    out = []
    for i, (h, w) in enumerate(sizes):
        messages = chat(f"What colour is shape {i}?") + [
            {"role": "assistant", "content": [{"type": "text", "text": f"It is red {i}."}]}
        ]
        out.append(Example(id=str(i), messages=messages, images=[picture(h, w, seed=i)]))
    return out


@pytest.mark.parametrize("high_res", ["anyres", "tiles"])
def test_mixed_aspect_batch_trains_one_step_and_generates(built_models, high_res):
    model, processor = load(built_models(high_res=high_res))
    sizes = [(48, 80), (300, 100), (200, 200)]
    samples = [encode_example(e, processor, max_length=2048) for e in _examples(sizes)]
    tiles = [s["pixel_values"].shape[0] for s in samples]
    assert tiles == [processor.layout.tile_count(s) for s in sizes] and len(set(tiles)) > 1
    padded, packed = Collator(processor.tokenizer.pad_token_id)(samples), PackedCollator(4096)(samples)
    for batch in (padded, packed):
        assert batch["pixel_values"].shape[0] == sum(tiles) and batch["image_sizes"].tolist() == [list(s) for s in sizes]
    with torch.no_grad():
        packed_loss = model(**packed).loss
    model.train()
    before = model.projector.linear_1.weight.detach().clone()
    loss = model(**padded).loss
    assert torch.isfinite(loss) and torch.allclose(loss, packed_loss, atol=1e-5)  # same tokens, same images
    loss.backward()
    if high_res == "anyres":
        assert model.image_newline.grad is not None and model.image_newline.grad.abs().sum() > 0
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    assert not torch.equal(before, model.projector.linear_1.weight)
    model.eval()
    prompts = [(chat("Describe it."), [picture(h, w)]) for h, w in sizes]
    batched = generate_answers(model, processor, prompts, batch_size=3, max_new_tokens=5)
    assert batched == generate_answers(model, processor, prompts, batch_size=1, max_new_tokens=5)


def test_truncation_keeps_variable_image_runs_whole(anyres):
    _, processor = anyres
    example = _examples([(300, 100)])[0]
    full = encode_example(example, processor, max_length=4096)
    runs = int((full["input_ids"] == processor.image_token_id).sum())
    assert runs == processor.layout.num_tokens((300, 100))
    cut = encode_example(example, processor, max_length=full["length"] - 2)
    assert int((cut["input_ids"] == processor.image_token_id).sum()) == runs
    with pytest.raises(BadSample, match="image tokens end at"):
        encode_example(example, processor, max_length=runs)


def test_save_reload_identical(anyres, tmp_path):
    model, processor = anyres
    images = [picture(48, 80), picture(300, 100)]
    text = processor.apply_chat_template(chat(n_images=2), add_generation_prompt=True)
    batch = processor(images=images, text=[text], return_tensors="pt")
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    reloaded, reprocessor = load(tmp_path)
    rebatch = reprocessor(images=images, text=[text], return_tensors="pt")
    assert all(torch.equal(batch[k], rebatch[k]) for k in ("input_ids", "pixel_values", "image_sizes"))
    assert torch.equal(model.image_newline, reloaded.image_newline)
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, reloaded(**rebatch).logits)


@pytest.mark.parametrize(
    ("vision", "projector", "llm"),
    [("tiny-clip", "mlp2x_gelu", "tiny-llama"), ("tiny-siglip", "linear", "tiny-qwen2")],
)
def test_export_to_llava_next_is_exact(built_models, tmp_path, vision, projector, llm):
    model, processor = load(built_models(vision, projector, llm, high_res="anyres"))
    out, target = export_hf(model, processor, tmp_path / "next")
    assert target == "LlavaNextForConditionalGeneration"
    hf_model = LlavaNextForConditionalGeneration.from_pretrained(out).eval()
    hf_processor = AutoProcessor.from_pretrained(out)
    assert type(hf_processor) is LlavaNextProcessor and type(hf_processor.image_processor) is LlavaNextImageProcessor

    images = [picture(48, 80), picture(100, 30)]  # two aspect ratios: different grids and unpadding
    texts = [processor.apply_chat_template(chat(q), add_generation_prompt=True) for q in ("Which?", "What is it?")]
    processor.tokenizer.padding_side = hf_processor.tokenizer.padding_side = "left"
    ours = processor(images=images, text=texts, padding=True, return_tensors="pt")
    theirs = hf_processor(images=images, text=texts, padding=True, return_tensors="pt")
    for key in ("input_ids", "attention_mask", "pixel_values", "image_sizes"):
        assert torch.equal(ours[key], theirs[key]), key
    with torch.no_grad():
        diff = (model(**ours).logits - hf_model(**theirs).logits).abs().max().item()
    print(f"LlavaNext export {vision}+{projector}+{llm}: max |logit diff| = {diff:.3e}")
    assert diff == 0.0  # the same weights through the same operations
    settings = {"max_new_tokens": 6, "do_sample": False}
    assert torch.equal(model.generate(**ours, **settings), hf_model.generate(**theirs, **settings))


def test_export_cli_picks_llava_next_and_tiles_stay(built_models, tmp_path, capsys):
    assert cli(["export", str(built_models(high_res="anyres")), "--to", "llava-next", "--out", str(tmp_path / "a")]) == 0
    assert "LlavaNextForConditionalGeneration" in capsys.readouterr().out
    assert AutoModelForImageTextToText.from_pretrained(tmp_path / "a").config.model_type == "llava_next"
    model, processor = load(built_models(high_res="tiles"))
    with pytest.raises(NotExportableError) as err:
        export_hf(model, processor, tmp_path / "t")
    assert "as LlavaForConditionalGeneration: high_res='tiles'" in str(err.value)
    assert "as LlavaNextForConditionalGeneration: high_res='tiles'" in str(err.value)


def test_bad_settings_and_inputs_say_what_is_wrong(anyres):
    with pytest.raises(ValueError, match="square token grid, but a tile gives 65 tokens"):
        build(BuildSpec(high_res="anyres", vision_feature_select_strategy="full"))
    with pytest.raises(ValueError, match="multiples of the 64 px tile size"):
        ImageLayout("anyres", tile_size=64, tile_tokens=64, grid_pinpoints=((64, 100),))
    with pytest.raises(KeyError, match=r"unknown high_res strategy 'anyress'; did you mean 'anyres'\? known: anyres, none, tiles"):
        build(BuildSpec(high_res="anyress"))
    with pytest.raises(ValueError, match="aspect='crop' applies to high_res='none'"):
        build(BuildSpec(high_res="anyres", aspect="crop"))
    model, processor = anyres
    text = processor.apply_chat_template(chat(), add_generation_prompt=True)
    batch = processor(images=[picture(48, 80)], text=[text], return_tensors="pt")
    with pytest.raises(ImageTokenMismatchError, match=r"184 image placeholder tokens, but the 1 images given need 136"):
        model(input_ids=batch["input_ids"], pixel_values=batch["pixel_values"], image_sizes=torch.tensor([[64, 64]]))
    with pytest.raises(ValueError, match="high_res='anyres' needs image_sizes"):
        model(input_ids=batch["input_ids"], pixel_values=batch["pixel_values"])
