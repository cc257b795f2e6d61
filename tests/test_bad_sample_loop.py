"""Bad samples travel from DataLoader workers to the training loop, which counts them and keeps going."""

import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from vlm.data.collate import Collator
from vlm.data.dataset import EncodedDataset, SkipBadSamples, take_bad_samples
from vlm.data.errors import BadSample, BadSampleKind, BadSampleLog
from vlm.data.example import Example
from vlm.data.synthetic import SyntheticWorld


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
