"""Collators (padding, packing with per-sample isolation), the modality/length sampler, padding stats."""

import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from vlm.data.collate import Collator, PackedCollator, padding_fraction
from vlm.data.example import Example
from vlm.data.sampler import ModalityLengthGroupedSampler
from vlm.data.tokenize import IGNORE_INDEX, encode_example


def sample(ids: list[int], labels: list[int], n_images: int = 0) -> dict:
    pixels = (
        torch.arange(n_images, dtype=torch.float).view(-1, 1, 1, 1).expand(-1, 3, 2, 2) if n_images else None
    )
    return {
        "input_ids": torch.tensor(ids),
        "labels": torch.tensor(labels),
        "pixel_values": pixels,
        "num_images": n_images,
        "length": len(ids),
    }


def test_collator_pads_right_to_longest():
    a, b = sample([5, 6, 7], [-100, 6, 7], n_images=2), sample([8], [8], n_images=0)
    batch = Collator(pad_token_id=0)([a, b])
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [8, -100, -100]]
    assert torch.equal(batch["pixel_values"], a["pixel_values"])


def test_collator_left_padding_multiple_of_and_image_order():
    a, b, c = sample([1, 2], [1, 2], 1), sample([3, 4, 5], [3, 4, 5], 2), sample([6], [6], 0)
    batch = Collator(pad_token_id=9, padding_side="left", pad_to_multiple_of=4)([a, b, c])
    assert batch["input_ids"].tolist() == [[9, 9, 1, 2], [9, 3, 4, 5], [9, 9, 9, 6]]
    assert batch["attention_mask"].tolist() == [[0, 0, 1, 1], [0, 1, 1, 1], [0, 0, 0, 1]]
    assert batch["labels"][0].tolist() == [-100, -100, 1, 2]
    assert torch.equal(batch["pixel_values"], torch.cat([a["pixel_values"], b["pixel_values"]]))
    assert "pixel_values" not in Collator(pad_token_id=0)([c, sample([7], [7])])


def test_padding_fraction():
    batches = [Collator(0)([sample([1, 2, 3], [1, 2, 3]), sample([4], [4])])]  # 2 pads in 6 slots
    assert padding_fraction(batches) == pytest.approx(2 / 6)
    assert padding_fraction([PackedCollator(16)([sample([1, 2], [1, 2]), sample([3], [3])])]) == 0.0
    assert padding_fraction([]) == 0.0


def test_packed_collator_layout():
    a, b, c = sample([1, 2, 3], [-100, 2, 3], 1), sample([4, 5], [4, 5]), sample([6, 7], [6, 7], 2)
    batch = PackedCollator(max_tokens=8)([a, b, c])
    assert batch["input_ids"].tolist() == [[1, 2, 3, 4, 5, 6, 7]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1, 0, 1]]
    assert batch["labels"].tolist() == [[-100, 2, 3, -100, 5, -100, 7]]  # no cross-sample prediction
    assert "attention_mask" not in batch and batch["use_cache"] is False
    assert torch.equal(batch["pixel_values"], torch.cat([a["pixel_values"], c["pixel_values"]]))
    assert b["labels"].tolist() == [4, 5]  # the samples themselves are untouched
    with pytest.raises(ValueError, match="max_tokens"):
        PackedCollator(max_tokens=6)([a, b, c])
    packs = PackedCollator(max_tokens=5).pack([a, b, c])
    assert [[len(s["input_ids"]) for s in p] for p in packs] == [[3, 2], [2]]


# --- packed == unpacked on a real model -----------------------------------------------------------


@pytest.fixture(scope="module")
def model_and_processor(built_models):
    path = built_models()
    model = AutoModelForImageTextToText.from_pretrained(path, dtype=torch.float32).eval()
    processor = AutoProcessor.from_pretrained(path)
    return model, processor


def encoded_samples(processor, images) -> list[dict]:
    image, text = {"type": "image"}, lambda s: {"type": "text", "text": s}
    examples = [
        Example("a", [
            {"role": "user", "content": [image, text("What colour is the circle?")]},
            {"role": "assistant", "content": "The circle is red."},
        ], images[:1]),
        Example("b", [
            {"role": "user", "content": "Say something about shapes."},
            {"role": "assistant", "content": "A square has four sides."},
        ]),
        Example("c", [
            {"role": "user", "content": [image, image, text("Which image shows more shapes?")]},
            {"role": "assistant", "content": "The second one."},
            {"role": "user", "content": "How many?"},
            {"role": "assistant", "content": "three"},
        ], images[1:3]),
    ]  # fmt: skip
    return [encode_example(e, processor, max_length=1024) for e in examples]


def summed_token_losses(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sum of next-token cross-entropies over supervised positions of one sequence."""
    losses = torch.nn.functional.cross_entropy(
        logits[:-1], labels[1:], ignore_index=IGNORE_INDEX, reduction="none"
    )
    return losses.sum()


def per_sample_packed_losses(model, samples, batch) -> list[torch.Tensor]:
    with torch.no_grad():
        logits = model(**batch).logits[0]
    out, start = [], 0
    for s in samples:
        end = start + s["length"]
        out.append(summed_token_losses(logits[start:end], batch["labels"][0, start:end]))
        start = end
    return out


def test_packed_batch_matches_unpacked_losses(model_and_processor, images):
    model, processor = model_and_processor
    samples = encoded_samples(processor, images)
    unpacked = []
    for s in samples:
        batch = Collator(processor.tokenizer.pad_token_id)([s])
        with torch.no_grad():
            unpacked.append(summed_token_losses(model(**batch).logits[0], batch["labels"][0]))

    packed_batch = PackedCollator(max_tokens=1024)(samples)
    packed = per_sample_packed_losses(model, samples, packed_batch)
    difference = max(float((p - u).abs()) for p, u in zip(packed, unpacked, strict=True))
    assert difference < 1e-5, difference

    # The comparison is sensitive: without isolation (a KV cache disables transformers' packed-sequence
    # detection) the later samples attend to the earlier ones and their losses move.
    leaky = per_sample_packed_losses(model, samples, {**packed_batch, "use_cache": True})
    assert max(float((p - u).abs()) for p, u in zip(leaky, unpacked, strict=True)) > 1e-3


def test_padded_batch_matches_unpacked_losses(model_and_processor, images):
    model, processor = model_and_processor
    samples = encoded_samples(processor, images)
    batch = Collator(processor.tokenizer.pad_token_id)(samples)
    with torch.no_grad():
        logits = model(**batch).logits
    for row, s in enumerate(samples):
        single = Collator(processor.tokenizer.pad_token_id)([s])
        with torch.no_grad():
            expected = summed_token_losses(model(**single).logits[0], single["labels"][0])
        got = summed_token_losses(logits[row], batch["labels"][row])
        assert float((got - expected).abs()) < 1e-5


# --- sampler --------------------------------------------------------------------------------------


def corpus(n: int = 203, seed: int = 0) -> tuple[list[int], list[bool]]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(10, 500, (n,), generator=g).tolist()
    has_image = (torch.rand(n, generator=g) < 0.6).tolist()
    return lengths, has_image


def test_sampler_covers_every_index_once_and_groups_by_modality():
    lengths, has_image = corpus()
    batch_size, world_size = 4, 2
    sampler = ModalityLengthGroupedSampler(lengths, has_image, batch_size, world_size=world_size, seed=3)
    order = list(sampler)
    assert sorted(order) == list(range(len(lengths))) and len(sampler) == len(lengths)
    megabatch = batch_size * world_size
    chunks = [order[i : i + megabatch] for i in range(0, len(order), megabatch)]
    full_chunks = chunks[:-2]  # the joined leftovers of the two modalities come last, up to two chunks
    assert all(len({has_image[i] for i in chunk}) == 1 for chunk in full_chunks)
    assert {has_image[chunk[0]] for chunk in full_chunks} == {True, False}


def test_sampler_groups_by_length():
    lengths, has_image = corpus(n=512)
    sampler = ModalityLengthGroupedSampler(lengths, has_image, batch_size=8, seed=0)
    grouped = padding_fraction_of(sampler.epoch_order(), lengths, 8)
    shuffled = padding_fraction_of(torch.randperm(512).tolist(), lengths, 8)
    assert grouped < shuffled / 2


def padding_fraction_of(order: list[int], lengths: list[int], batch_size: int) -> float:
    batches = []
    for i in range(0, len(order), batch_size):
        rows = [lengths[j] for j in order[i : i + batch_size]]
        mask = torch.zeros(len(rows), max(rows))
        for r, n in enumerate(rows):
            mask[r, :n] = 1
        batches.append({"input_ids": mask, "attention_mask": mask})
    return padding_fraction(batches)


def test_sampler_deterministic_per_seed_and_epoch():
    lengths, has_image = corpus()

    def order(seed, epoch):
        return list(ModalityLengthGroupedSampler(lengths, has_image, 4, seed=seed, epoch=epoch))

    assert order(1, 0) == order(1, 0)
    assert order(1, 0) != order(1, 1) and order(1, 0) != order(2, 0)
    sampler = ModalityLengthGroupedSampler(lengths, has_image, 4, seed=1)
    sampler.set_epoch(1)
    assert list(sampler) == order(1, 1)
    assert list(sampler) == order(1, 1)  # a second pass repeats the epoch


def test_sampler_resumes_mid_epoch():
    lengths, has_image = corpus()
    sampler = ModalityLengthGroupedSampler(lengths, has_image, 4, seed=5, epoch=2)
    expected = sampler.epoch_order()
    it = iter(sampler)
    first = [next(it) for _ in range(37)]
    state = sampler.state_dict()
    assert state["position"] == 37 and state["epoch"] == 2

    resumed = ModalityLengthGroupedSampler(lengths, has_image, 4, seed=0)
    resumed.load_state_dict(state)
    assert len(resumed) == len(lengths) - 37
    assert first + list(resumed) == expected
    assert list(resumed) == expected  # after the resumed pass, the next one starts at the beginning
    with pytest.raises(ValueError, match="samples"):
        ModalityLengthGroupedSampler(lengths[:-1], has_image[:-1], 4).load_state_dict(state)


def test_sampler_order_depends_on_the_global_batch_only():
    """With ``drop_incomplete`` (training): every optimizer step's samples are the same however
    processes and accumulation split the global batch, and an epoch stops at its last whole one."""
    lengths, has_image = corpus()
    # (per-process batch x accumulation, processes) making a global batch of 16
    orders = [list(ModalityLengthGroupedSampler(lengths, has_image, b, world_size=w, seed=2, drop_incomplete=True))
              for b, w in ((16, 1), (8, 2), (4, 4))]
    assert orders[0] == orders[1] == orders[2]
    assert len(orders[0]) == len(lengths) // 16 * 16 == len(set(orders[0]))
