"""The assembled model: parts x LLM families, save/load, generation, token counts and errors."""

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor

from vlm import ImageTokenMismatchError, VLMConfig, VLMForConditionalGeneration, VLMProcessor


def load(path):
    return AutoModelForImageTextToText.from_pretrained(path).eval(), AutoProcessor.from_pretrained(path)


def prompt(processor, question: str, n_images: int = 1) -> str:
    content = [{"type": "image"}] * n_images + [{"type": "text", "text": question}]
    return processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)


@pytest.mark.parametrize("vision", ["tiny-clip", "tiny-siglip"])
@pytest.mark.parametrize("llm", ["tiny-llama", "tiny-qwen2"])
def test_assembly_forward_and_generate(built_models, images, vision, llm):
    model, processor = load(built_models(vision, "mlp2x_gelu", llm))
    assert isinstance(model, VLMForConditionalGeneration) and isinstance(processor, VLMProcessor)
    batch = processor(
        images=images[:1], text=[prompt(processor, "What colour is the circle?")], return_tensors="pt"
    )
    n_placeholders = int((batch["input_ids"] == model.config.image_token_id).sum())
    assert n_placeholders == model.config.image_seq_length == 64
    assert batch["pixel_values"].shape == (1, 3, 64, 64)
    out = model(**batch, labels=batch["input_ids"])
    assert torch.isfinite(out.loss)
    assert out.logits.shape == (*batch["input_ids"].shape, model.config.text_config.vocab_size)
    generated = model.generate(**batch, max_new_tokens=6, do_sample=False)
    assert (
        generated.shape[1] == batch["input_ids"].shape[1] + 6 or processor.tokenizer.eos_token_id in generated
    )


def test_auto_classes_resolve(built_models):
    path = built_models()
    assert isinstance(AutoConfig.from_pretrained(path), VLMConfig)
    assert isinstance(AutoModelForCausalLM.from_pretrained(path), VLMForConditionalGeneration)
    assert isinstance(AutoProcessor.from_pretrained(path), VLMProcessor)
    assert sorted(p.name for p in path.glob("*.safetensors")) and not list(path.glob("*.bin"))


def test_save_load_round_trip_identical_logits(built_models, images, tmp_path):
    model, processor = load(built_models("tiny-siglip", "mlp2x_gelu", "tiny-qwen2"))
    batch = processor(
        images=images[1:2], text=[prompt(processor, "Describe the image.")], return_tensors="pt"
    )
    model.save_pretrained(tmp_path, max_shard_size="100KB")  # sharded safetensors on purpose
    processor.save_pretrained(tmp_path)
    assert len(list(tmp_path.glob("model-*.safetensors"))) > 1
    reloaded, reprocessor = load(tmp_path)
    rebatch = reprocessor(
        images=images[1:2], text=[prompt(reprocessor, "Describe the image.")], return_tensors="pt"
    )
    assert torch.equal(batch["input_ids"], rebatch["input_ids"])
    assert torch.equal(batch["pixel_values"], rebatch["pixel_values"])
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, reloaded(**rebatch).logits)


def test_batched_left_padded_generation_equals_single(built_models, images):
    model, processor = load(built_models("tiny-clip", "mlp2x_gelu", "tiny-llama"))
    samples = [  # two images, text only, one image: a mixed batch of very different lengths
        (images[:2], prompt(processor, "Which image shows more red?", n_images=2)),
        ([], prompt(processor, "Say something about shapes.", n_images=0)),
        (images[2:], prompt(processor, "How many shapes are there?")),
    ]
    settings = dict(max_new_tokens=8, do_sample=False)
    singles = []
    for imgs, text in samples:
        batch = processor(images=imgs or None, text=[text], return_tensors="pt")
        singles.append(model.generate(**batch, **settings)[0, batch["input_ids"].shape[1] :].tolist())
    flat = [img for imgs, _ in samples for img in imgs]
    batch = processor(
        images=flat, text=[t for _, t in samples], return_tensors="pt", padding=True, padding_side="left"
    )
    assert (batch["attention_mask"] == 0).any()
    out = model.generate(**batch, **settings)[:, batch["input_ids"].shape[1] :]
    pad = processor.tokenizer.pad_token_id
    for single, row in zip(singles, out.tolist(), strict=True):
        assert row[: len(single)] == single
        assert all(t == pad for t in row[len(single) :])


def test_sampling_parameters_are_seeded(built_models, images):
    model, processor = load(built_models())
    batch = processor(images=images[:1], text=[prompt(processor, "Describe.")], return_tensors="pt")
    settings = dict(
        max_new_tokens=8, do_sample=True, temperature=1.5, top_p=0.9, top_k=50, repetition_penalty=1.1
    )
    torch.manual_seed(3)
    a = model.generate(**batch, **settings)
    torch.manual_seed(3)
    b = model.generate(**batch, **settings)
    assert torch.equal(a, b)


@pytest.mark.parametrize(
    ("vision", "strategy", "expected"),
    [
        ("tiny-clip", "default", 64),
        ("tiny-clip", "full", 65),
        ("tiny-siglip", "default", 64),
        ("tiny-siglip", "full", 64),
    ],
)
def test_tokens_per_image_respects_prefix_tokens(built_models, images, vision, strategy, expected):
    """SigLIP has no CLS token: the default strategy must not drop a patch there."""
    path = built_models(vision, "linear", "tiny-llama", vision_feature_select_strategy=strategy)
    model, processor = load(path)
    assert model.config.image_seq_length == processor.image_seq_length == expected
    with torch.no_grad():
        assert model.get_image_features(torch.zeros(2, 3, 64, 64)).shape[:2] == (2, expected)
    batch = processor(images=images[:1], text=[prompt(processor, "Hi")], return_tensors="pt")
    model(**batch)


def test_multiple_feature_layers_concatenate_channels(built_models):
    model, _ = load(built_models("tiny-clip", "mlp2x_gelu", "tiny-llama", vision_feature_layer=[-2, -1]))
    hidden = model.config.vision_config.hidden_size
    assert model.projector.linear_1.in_features == 2 * hidden
    with torch.no_grad():
        assert model.vision_tower(torch.zeros(1, 3, 64, 64)).shape == (1, 64, 2 * hidden)


def test_marker_image_count_mismatch_names_both_counts(built_models, images):
    model, processor = load(built_models())
    text = [prompt(processor, "Compare them.", n_images=2)]
    with pytest.raises(ValueError, match=r"2 <image> tokens and 1 images"):
        processor(images=images[:1], text=text, return_tensors="pt")
    batch = processor(images=images[:2], text=text, return_tensors="pt")
    with pytest.raises(ImageTokenMismatchError, match=r"2 <image> markers .* but 3 images"):
        model(input_ids=batch["input_ids"], pixel_values=torch.cat([batch["pixel_values"]] * 2)[:3])
    with pytest.raises(ImageTokenMismatchError, match=r"128 image placeholder tokens but no images"):
        model(input_ids=batch["input_ids"])


def test_labels_never_train_on_image_positions(built_models, images):
    model, processor = load(built_models())
    batch = processor(images=images[:1], text=[prompt(processor, "Hi")], return_tensors="pt")
    ids = batch["input_ids"]
    masked = ids.masked_fill(ids == model.config.image_token_id, -100)
    with torch.no_grad():
        assert model(**batch, labels=ids).loss.item() == model(**batch, labels=masked).loss.item()


def test_pad_to_square_uses_the_mean_colour(built_models):
    from PIL import Image

    _, processor = load(built_models())
    wide = Image.new("RGB", (64, 32), (255, 255, 255))
    pixels = processor.image_processor(wide, return_tensors="pt")["pixel_values"][0]
    mean = torch.tensor(processor.image_processor.image_mean)
    std = torch.tensor(processor.image_processor.image_std)
    expected_pad = ((mean * 255).int() / 255 - mean) / std  # the mean colour, quantised to 8 bits
    assert pixels.shape == (3, 64, 64)
    torch.testing.assert_close(pixels[:, 0, 32], expected_pad, atol=0.02, rtol=0)  # top band: padding
    torch.testing.assert_close(pixels[:, 32, 32], (1 - mean) / std, atol=0.02, rtol=0)  # centre: white image


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("llm", ["tiny-llama", "tiny-qwen2"])
def test_supervised_only_head_gives_the_same_loss_and_gradients(built_models, images, llm, fused):
    """logits_to_keep="supervised" projects only positions with a supervised next token, fused with the loss
    where the head is plain (Qwen2's is tied to its embeddings) or through the LM's own logits_to_keep;
    loss and every gradient equal the full-logits path, with and without num_items_in_batch."""
    model, processor = load(built_models("tiny-clip", "mlp2x_gelu", llm))
    model.train()
    model._head_blockers = [] if fused else ["post-processed logits"]
    texts = [prompt(processor, "What colour is the circle?"), prompt(processor, "Shape?", n_images=2)]
    batch = processor(images=[images[:1], images[1:3]], text=texts, padding=True, return_tensors="pt")
    labels = batch["input_ids"].clone()
    labels[batch["attention_mask"] == 0] = -100
    labels[0, : labels.shape[1] - 5] = -100  # row 0: its last 5 tokens supervised
    labels[1, : labels.shape[1] - 9] = -100
    for num_items in (None, torch.tensor(37)):
        extra = {} if num_items is None else {"num_items_in_batch": num_items}
        results = []
        for keep in (0, "supervised"):
            model.zero_grad()
            out = model(**batch, labels=labels, logits_to_keep=keep, **extra)
            out.loss.backward()
            results.append((out, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
        (full, full_grads), (kept, kept_grads) = results
        assert kept.loss.item() == pytest.approx(full.loss.item(), rel=1e-6)
        if fused:
            assert kept.logits is None
        else:
            assert kept.logits.shape[1] == int((labels[:, 1:] != -100).any(0).sum()) < full.logits.shape[1]
        assert full_grads.keys() == kept_grads.keys()
        for name, grad in full_grads.items():
            torch.testing.assert_close(kept_grads[name], grad, rtol=1e-5, atol=1e-6, msg=name)
    with pytest.raises(ValueError, match="needs labels"):
        model(**batch, logits_to_keep="supervised")


def test_fused_linear_cross_entropy_equals_the_plain_loss_chunk_by_chunk():
    from vlm.losses import fused_linear_cross_entropy

    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(37, 16, generator=g, requires_grad=True)
    weight = torch.randn(300, 16, generator=g, requires_grad=True)
    targets = torch.randint(0, 300, (37,), generator=g)
    targets[[3, 20]] = -100
    plain = torch.nn.functional.cross_entropy(hidden @ weight.t(), targets, ignore_index=-100, reduction="sum")
    expected = torch.autograd.grad(plain * 0.5, (hidden, weight))
    for chunk in (1, 8, 37, 64):
        loss = fused_linear_cross_entropy(hidden, weight, targets, chunk)
        assert loss.item() == pytest.approx(plain.item(), rel=1e-6)
        grads = torch.autograd.grad(loss * 0.5, (hidden, weight))
        for got, want in zip(grads, expected, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    frozen = weight.detach()  # a frozen head (align stage): only the hidden states get a gradient
    (grad,) = torch.autograd.grad(fused_linear_cross_entropy(hidden, frozen, targets, 8), (hidden,))
    torch.testing.assert_close(grad, expected[0] * 2, rtol=1e-5, atol=1e-6)
