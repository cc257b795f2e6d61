"""LLaVA JSON/JSONL sources: conversions, and each malformed record skipped with its own kind."""

import json

import pytest
from PIL import Image
from train_helpers import synthetic_corpus

from vlm.data.errors import BadSample
from vlm.data.sources import LlavaJsonDataset


def _turns(*values):
    return [{"from": "human" if i % 2 == 0 else "gpt", "value": v} for i, v in enumerate(values)]


RECORDS = [
    {"id": "one", "image": "a.png", "conversations": _turns("<image>\nWhat colour?", "red")},
    {"id": "two", "image": ["a.png", "b.png"], "conversations": _turns("<image>\n<image>\nSame?", "no")},
    {"id": "text", "conversations": _turns("Hello", "Hi", "Bye", "Bye")},
    {"id": "nomarker", "image": "a.png", "conversations": _turns("Describe.", "A circle.")},
    {"id": "missing", "image": "gone.png", "conversations": _turns("<image>\nQ", "A")},
    {"id": "escape", "image": "../../etc/passwd", "conversations": _turns("<image>\nQ", "A")},
    {"id": "roles", "image": "a.png", "conversations": [{"from": "gpt", "value": "<image>\nA"}]},
    {"id": "empty", "image": "a.png", "conversations": _turns("<image>\nQ", "  ")},
    {"id": "count", "image": "a.png", "conversations": _turns("<image>\n<image>\nQ", "A")},
]
KINDS = {
    "missing": "missing_image",
    "escape": "path_escape",
    "roles": "bad_conversation",
    "empty": "bad_conversation",
    "count": "image_count_mismatch",
}


@pytest.fixture
def corpus(tmp_path):
    Image.new("RGB", (8, 8), "red").save(tmp_path / "a.png")
    Image.new("RGB", (8, 8), "blue").save(tmp_path / "b.png")
    lines = [json.dumps(r) for r in RECORDS]
    lines.insert(2, '{"id": "broken", "conversations": [')
    (tmp_path / "data.jsonl").write_text("\n".join(lines))
    return LlavaJsonDataset(tmp_path / "data.jsonl", tmp_path)


def test_good_records_convert(corpus):
    one = corpus[0]
    assert one.messages[0]["content"] == [{"type": "image"}, {"type": "text", "text": "What colour?"}]
    assert one.messages[1] == {"role": "assistant", "content": [{"type": "text", "text": "red"}]}
    assert len(corpus[1].images) == 2 and corpus[1].images[1].getpixel((0, 0)) == (0, 0, 255)
    assert corpus[3].images == [] and len(corpus[3].messages) == 4
    assert corpus[4].messages[0]["content"][0] == {"type": "image"}  # LLaVA: marker prepended


def test_each_bad_record_has_its_kind(corpus):
    with pytest.raises(BadSample, match="malformed_record"):
        corpus[2]
    by_id = {r["id"]: i + (i >= 2) for i, r in enumerate(RECORDS)}
    for sample_id, kind in KINDS.items():
        with pytest.raises(BadSample) as info:
            corpus[by_id[sample_id]]
        assert (info.value.kind.value, info.value.sample_id) == (kind, sample_id)
    lengths, has_image = corpus.modality_lengths()
    assert len(lengths) == len(corpus) == 10 and has_image[0] and not has_image[3]


def test_synthetic_folder_reads_back_like_a_downloaded_corpus(tmp_path):
    files = synthetic_corpus(tmp_path, n=4, size=64)
    dataset = LlavaJsonDataset(files["vqa"], tmp_path)
    example = dataset[0]
    assert example.images[0].size == (64, 64) and example.messages[0]["content"][0] == {"type": "image"}
