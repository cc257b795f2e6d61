"""Bad samples travel from DataLoader workers to the training loop, which counts them and keeps going."""

import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from vlm.data.collate import Collator
from vlm.data.dataset import EncodedDataset, SkipBadSamples, take_bad_samples
from vlm.data.errors import BadSample, BadSampleKind, BadSampleLog
from vlm.data.example import Example
from vlm.shapes.world import SyntheticWorld


class FlakySource:
    """Synthetic examples where every 5th one is unusable: a missing image (source side) or far too long."""

    def __init__(self, n: int):
        world = SyntheticWorld("train", size=64)
        self.examples = [world.examples(i, "vqa")[0] for i in range(n)]

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> Example:
        example = self.examples[i]
        if i % 10 == 4:
            raise BadSample(BadSampleKind.MISSING_IMAGE, example.id, "images/x.png does not exist")
        if i % 10 == 9:
            long_reply = {"role": "assistant", "content": [{"type": "text", "text": "red " * 400}]}
            return Example(example.id, [*example.messages[:1], long_reply], example.images)
        return example


def _loader(processor, n=20, workers=2):
    dataset = EncodedDataset(FlakySource(n), processor, max_length=160, truncation="drop")
    collate = SkipBadSamples(Collator(processor.tokenizer.pad_token_id))
    return torch.utils.data.DataLoader(dataset, batch_size=4, num_workers=workers, collate_fn=collate)


def test_training_loop_skips_and_counts_bad_samples(built_models):
    path = built_models()
    model, processor = AutoModelForImageTextToText.from_pretrained(path), AutoProcessor.from_pretrained(path)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    log, steps = BadSampleLog(), 0
    for batch in _loader(processor):
        batch = take_bad_samples(batch, log)
        if not batch:
            continue
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        steps += 1
    assert steps == 5
    assert log.counts == {"missing_image": 2, "too_long": 2}
    assert "vqa_train" in log.summary()


def test_strict_mode_fails_at_the_first_bad_sample_with_its_id(built_models):
    processor = AutoProcessor.from_pretrained(built_models())
    log = BadSampleLog(strict=True)
    with pytest.raises(BadSample, match=r"bad sample 'vqa_train_0000004_\w+' \(missing_image\)"):
        for batch in _loader(processor, workers=0):
            take_bad_samples(batch, log)


def test_every_bad_kind_from_files_through_the_loop(built_models, tmp_path):
    """A corpus on disk with one sample of each bad kind next to good ones: trains to the end, counts each."""
    import json
    import struct
    import zlib

    from PIL import Image
    from train_helpers import synthetic_corpus

    from vlm.data.sources import LlavaJsonDataset

    good = json.loads(synthetic_corpus(tmp_path, n=6, size=64)["vqa"].read_text())[:8]
    (tmp_path / "broken.png").write_bytes((tmp_path / good[0]["image"]).read_bytes()[:100])

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    bomb = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    (tmp_path / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bomb)
    Image.new("CMYK", (64, 64), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")  # odd but fine

    def rec(i, image, human="<image>\nWhat colour?", gpt="red"):
        turns = [{"from": "human", "value": human}, {"from": "gpt", "value": gpt}]
        return json.dumps({"id": f"bad{i}", "image": image, "conversations": turns})

    lines = [json.dumps(r) for r in good] + [
        rec(0, "broken.png"), rec(1, "nowhere.png"), rec(2, "bomb.png"), rec(3, "../../etc/passwd"),
        "{not json", rec(5, "cmyk.jpg", gpt=""), rec(6, "cmyk.jpg", human="<image>\n<image>\nQ"),
        rec(7, "cmyk.jpg", gpt="red " * 300), rec(8, "cmyk.jpg"),
    ]  # fmt: skip
    (tmp_path / "mixed.jsonl").write_text("\n".join(lines))
    path = built_models()
    model, processor = AutoModelForImageTextToText.from_pretrained(path), AutoProcessor.from_pretrained(path)
    dataset = EncodedDataset(LlavaJsonDataset(tmp_path / "mixed.jsonl", tmp_path), processor, 160, "drop")
    collate = SkipBadSamples(Collator(processor.tokenizer.pad_token_id))
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, num_workers=2, collate_fn=collate)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    log, trained = BadSampleLog(), 0
    for batch in loader:
        batch = take_bad_samples(batch, log)
        if batch:
            model(**batch).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            trained += batch["input_ids"].shape[0]
    assert trained == len(good) + 1  # the CMYK sample trains
    assert log.counts == {
        "corrupt_image": 1, "missing_image": 1, "oversized_image": 1, "path_escape": 1,
        "malformed_record": 1, "bad_conversation": 1, "image_count_mismatch": 1, "too_long": 1,
    }  # fmt: skip
    print(log.summary())
