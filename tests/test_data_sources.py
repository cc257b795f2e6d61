"""Data sources end to end: every bad input skipped and counted by kind (or raised, strict), odd image
modes made correct RGB, mixtures deterministic and exact, parquet round trip, the preparation script."""

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from vlm.cli import main
from vlm.data.errors import BadSample, BadSampleLog
from vlm.data.hf_local import HFLocalDataset
from vlm.data.images import load_image
from vlm.data.mixture import load_mixture, select
from vlm.data.sources import LlavaJsonDataset, llava_json

ROOT = Path(__file__).resolve().parents[1]


def _turns(*values):
    return [{"from": "human" if i % 2 == 0 else "gpt", "value": v} for i, v in enumerate(values)]


def _record(sample_id, image=None, human="<image>\nWhat is it?", gpt="A square."):
    record = {"id": sample_id, "conversations": _turns(human, gpt)}
    return record if image is None else {**record, "image": image}


def _bomb_png(width=100_000, height=100_000):
    """A valid PNG header claiming ``width x height`` pixels; its pixel data is never written."""

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


GOOD = [
    _record("single", "red.png"),
    _record("multi", ["red.png", "blue.png"], human="Compare <image>\nand <image>\nplease."),
    _record("text-only", human="Hello", gpt="Hi there."),
    _record("no-marker", "red.png", human="Describe it."),
    {"id": "system", "image": "red.png", "conversations": [{"from": "system", "value": "Be brief."}]
     + _turns("<image>\nQ", "A")},
]  # fmt: skip
BAD = {  # id -> (record, expected kind)
    "truncated": (_record("truncated", "truncated.png"), "corrupt_image"),
    "noise": (_record("noise", "noise.jpg"), "corrupt_image"),
    "missing": (_record("missing", "missing.png"), "missing_image"),
    "bomb": (_record("bomb", "bomb.png"), "oversized_image"),
    "dotdot": (_record("dotdot", "../../etc/passwd"), "path_escape"),
    "absolute": (_record("absolute", "/etc/passwd"), "path_escape"),
    "symlink": (_record("symlink", "link.png"), "path_escape"),
    "roles": (_record("roles", "red.png") | {"conversations": _turns("Q", "A")[::-1]}, "bad_conversation"),
    "empty": (_record("empty", "red.png", gpt=" \n"), "bad_conversation"),
    "ends-human": (_record("ends-human") | {"conversations": _turns("Q", "A", "Q2")}, "bad_conversation"),
    "mismatch": (_record("mismatch", "red.png", human="<image>\n<image>\nQ"), "image_count_mismatch"),
    "image-in-text-only": (_record("image-in-text-only"), "image_count_mismatch"),
}
MALFORMED_LINE = '{"id": "broken", "conversations": ['


@pytest.fixture
def root(tmp_path):
    """An image root with good, broken and escaping images, and a file outside it."""
    root = tmp_path / "root"
    root.mkdir()
    Image.new("RGB", (16, 16), "red").save(root / "red.png")
    Image.new("RGB", (16, 16), "blue").save(root / "blue.png")
    data = (root / "red.png").read_bytes()
    (root / "truncated.png").write_bytes(data[: len(data) // 2])
    (root / "noise.jpg").write_bytes(np.random.default_rng(0).bytes(3000))
    (root / "bomb.png").write_bytes(_bomb_png())
    Image.new("RGB", (4, 4), "green").save(tmp_path / "outside.png")
    (root / "link.png").symlink_to(tmp_path / "outside.png")
    return root


@pytest.fixture
def jsonl(root):
    lines = [json.dumps(r) for r in GOOD] + [json.dumps(r) for r, _ in BAD.values()]
    lines.insert(3, MALFORMED_LINE)  # line 4
    path = root.parent / "data.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_bad_samples_are_skipped_and_counted_by_kind(jsonl, root):
    log = BadSampleLog()
    examples = {e.id: e for e in llava_json(jsonl, root, log)}
    assert list(examples) == [r["id"] for r in GOOD]
    expected = {"malformed_record": 1}
    for _, kind in BAD.values():
        expected[kind] = expected.get(kind, 0) + 1
    assert dict(log.counts) == expected

    assert examples["single"].messages[0]["content"] == [
        {"type": "image"},
        {"type": "text", "text": "What is it?"},
    ]
    multi = examples["multi"]
    assert multi.messages[0]["content"] == [
        {"type": "text", "text": "Compare "}, {"type": "image"}, {"type": "text", "text": "and "},
        {"type": "image"}, {"type": "text", "text": "please."},
    ]  # fmt: skip
    assert [im.getpixel((0, 0)) for im in multi.images] == [(255, 0, 0), (0, 0, 255)]
    assert examples["text-only"].images == [] and len(examples["text-only"].messages) == 2
    assert examples["no-marker"].messages[0]["content"][0] == {"type": "image"}  # LLaVA: prepended
    assert examples["system"].messages[1]["content"][0] == {"type": "image"}  # first human turn
    assert all(im.mode == "RGB" for e in examples.values() for im in e.images)


def test_map_style_returns_none_for_bad_samples_and_reads_stats_without_images(jsonl, root):
    log = BadSampleLog()
    dataset = LlavaJsonDataset(jsonl, root, log)
    assert len(dataset) == len(GOOD) + len(BAD) + 1
    items = [dataset[i] for i in range(len(dataset))]
    assert sum(item is None for item in items) == len(BAD) + 1 == log.total
    lengths, has_image = dataset.lengths(), dataset.modalities()
    assert lengths[:3] == [6, 7, 3] and has_image[:4] == [True, True, False, False]  # index 3: malformed


@pytest.mark.parametrize("sample_id", [*BAD, "malformed"])
def test_strict_mode_raises_naming_the_sample(jsonl, root, sample_id):
    dataset = LlavaJsonDataset(jsonl, root, BadSampleLog(strict=True))
    ids = [r["id"] for r in GOOD[:3]] + ["malformed"] + [r["id"] for r in GOOD[3:]] + list(BAD)
    expected_id, kind = (
        ("data.jsonl:4", "malformed_record") if sample_id == "malformed" else (sample_id, BAD[sample_id][1])
    )
    with pytest.raises(BadSample, match=f"'{expected_id}' \\({kind}\\)") as info:
        dataset[ids.index(sample_id)]
    assert (info.value.sample_id, info.value.kind.value) == (expected_id, kind)
    assert LlavaJsonDataset(jsonl, root)[0].id == "single"  # no log: good samples still load


def test_without_a_log_bad_samples_raise_for_the_training_loop(jsonl, root):
    with pytest.raises(BadSample, match="missing_image"):
        LlavaJsonDataset(jsonl, root)[len(GOOD) + 1 + list(BAD).index("missing")]


def test_image_modes_become_correct_rgb(tmp_path):
    Image.new("RGB", (4, 4), (0, 0, 255)).convert("P").save(tmp_path / "p.png")
    palette = Image.new("P", (4, 4), 1)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette.save(tmp_path / "p_transparent.png", transparency=1)  # index 1 (red) transparent -> white
    Image.new("RGBA", (4, 4), (255, 0, 0, 0)).save(tmp_path / "rgba_clear.png")
    Image.new("RGBA", (4, 4), (255, 0, 0, 255)).save(tmp_path / "rgba_solid.png")
    Image.new("RGBA", (4, 4), (0, 0, 0, 128)).save(tmp_path / "rgba_half.png")
    Image.new("LA", (4, 4), (0, 0)).save(tmp_path / "la.png")
    Image.new("CMYK", (4, 4), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")  # red
    Image.new("CMYK", (4, 4), (0, 255, 255, 0)).save(tmp_path / "cmyk.tif")  # lossless red
    Image.new("L", (4, 4), 77).save(tmp_path / "l.png")
    Image.new("1", (4, 4), 1).save(tmp_path / "one.png")
    sixteen = np.array([[0, 257 * 100, 32768, 65535]], dtype=np.uint16)
    Image.fromarray(sixteen).save(tmp_path / "i16.png")
    assert Image.open(tmp_path / "i16.png").mode.startswith("I")

    def px(name, xy=(0, 0)):
        image = load_image(name, tmp_path, "s")
        assert image.mode == "RGB"
        return image.getpixel(xy)

    assert px("p.png") == (0, 0, 255)
    assert px("p_transparent.png") == (255, 255, 255)
    assert px("rgba_clear.png") == (255, 255, 255) and px("rgba_solid.png") == (255, 0, 0)
    assert all(abs(c - 127) <= 1 for c in px("rgba_half.png"))  # black at 50% on white
    assert px("la.png") == (255, 255, 255)
    red = px("cmyk.jpg")
    assert red[0] > 200 and max(red[1:]) < 60 and px("cmyk.tif") == (255, 0, 0)
    assert px("l.png") == (77, 77, 77) and px("one.png") == (255, 255, 255)
    assert [px("i16.png", (x, 0))[0] for x in range(4)] == [0, 100, 128, 255]  # scaled, not clipped


def test_exif_orientation_and_animated_gif(tmp_path):
    wide = Image.new("RGB", (40, 20), "red")
    wide.paste((0, 0, 255), (20, 0, 40, 20))  # left red, right blue
    exif = wide.getexif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    wide.save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    upright = load_image("rotated.jpg", tmp_path, "s")
    assert upright.size == (20, 40)
    top, bottom = upright.getpixel((10, 5)), upright.getpixel((10, 35))
    assert top[0] > 200 > top[2] and bottom[2] > 200 > bottom[0]  # the left (red) side is now on top

    frames = [Image.new("RGB", (8, 8), c) for c in ("red", "blue")]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    (tmp_path / "anim.gif").write_bytes(buffer.getvalue())
    r, _, b = load_image("anim.gif", tmp_path, "s").getpixel((0, 0))
    assert r > 200 and b < 60


def test_bombs_are_refused_from_the_header(tmp_path):
    (tmp_path / "bomb.png").write_bytes(_bomb_png())
    for limit in (64_000_000, 10**12):  # ours, then Pillow's own DecompressionBombError
        with pytest.raises(BadSample, match="oversized_image"):
            load_image("bomb.png", tmp_path, "s", max_pixels=limit)
    (tmp_path / "wide.png").write_bytes(_bomb_png(1000, 1000))
    with pytest.raises(BadSample, match="oversized_image"):
        load_image("wide.png", tmp_path, "s", max_pixels=999_999)


def _write_jsonl(path, prefix, n, image=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    records = [
        _record(f"{prefix}{i}", image, human=f"<image>\n{'word ' * i}" if image else "Q " * (i + 1))
        for i in range(n)
    ]
    path.write_text("\n".join(json.dumps(r) for r in records))


def _mixture(tmp_path, spec):
    (tmp_path / "mix").mkdir(exist_ok=True)
    (tmp_path / "mix" / "mix.yaml").write_text(yaml.safe_dump(spec))
    return load_mixture(tmp_path / "mix" / "mix.yaml", BadSampleLog(strict=True))


def test_mixture_sampling_is_deterministic_and_exact(tmp_path):
    _write_jsonl(tmp_path / "mix" / "files" / "a.jsonl", "a", 10)
    _write_jsonl(tmp_path / "mix" / "files" / "b.jsonl", "b", 4)
    Image.new("RGB", (8, 8), "red").save(tmp_path / "mix" / "red.png")
    _write_jsonl(tmp_path / "mix" / "files" / "c.json.jsonl", "c", 3, image="red.png")
    entries = [
        {"path": "files/a.jsonl", "sampling": "first:3"},
        {"path": "files/a.jsonl", "sampling": "end:20%"},
        {"json_path": "files/a.jsonl", "sampling_strategy": "random:50%"},
        {"path": "files/b.jsonl", "weight": 1.5},
        {"path": "files/c.json.jsonl", "weight": 2},
    ]
    mixture = _mixture(tmp_path, {"seed": 1, "datasets": entries})
    ids = [mixture[i].id for i in range(len(mixture))]
    assert ids[:5] == ["a0", "a1", "a2", "a8", "a9"]
    randoms = ids[5:10]
    assert len(set(randoms)) == 5 and randoms == sorted(randoms, key=lambda s: int(s[1:]))
    assert ids[10:14] == ["b0", "b1", "b2", "b3"] and len(set(ids[14:16]) - {"b0", "b1", "b2", "b3"}) == 0
    assert len(set(ids[14:16])) == 2 and ids[16:] == ["c0", "c1", "c2"] * 2
    assert mixture[16].images[0].getpixel((0, 0)) == (255, 0, 0)  # image root: the YAML's folder
    assert mixture.modalities() == [False] * 16 + [True] * 6
    assert mixture.lengths()[:3] == [3, 4, 5] and mixture.lengths()[16:19] == [3, 4, 5]

    again = _mixture(tmp_path, {"seed": 1, "datasets": entries})
    assert [again[i].id for i in range(len(again))] == ids
    seeds = {tuple(mixture[i].id for i in range(len(mixture)))}
    for seed in range(2, 6):
        other = _mixture(tmp_path, {"seed": seed, "datasets": entries})
        seeds.add(tuple(other[i].id for i in range(len(other))))
    assert len(seeds) > 1  # the seed drives the random picks

    shares = _mixture(tmp_path, {"size": 101, "datasets": [
        {"path": "files/a.jsonl", "weight": 3}, {"path": "files/b.jsonl", "weight": 1}]})  # fmt: skip
    assert len(shares) == 101 and shares.counts() == [76, 25]
    shuffled = _mixture(tmp_path, {"seed": 1, "shuffle": True, "datasets": entries})
    assert sorted(shuffled[i].id for i in range(len(shuffled))) == sorted(ids)


def test_select_rejects_unknown_strategies():
    rng = np.random.default_rng(0)
    assert select("first:100", 10, rng).tolist() == list(range(10))
    assert len(select("random:3", 10, rng)) == 3
    for bad in ("middle:3", "first:x", "random"):
        with pytest.raises(ValueError, match="sampling"):
            select(bad, 10, rng)


def test_parquet_round_trip(jsonl, root, tmp_path):
    import datasets

    def encoded(names):
        return [{"bytes": (root / n).read_bytes(), "path": None} for n in names]

    rows = list(GOOD)
    table = {
        "id": [r["id"] for r in rows] + ["corrupt"],
        "images": [
            encoded([r["image"]] if isinstance(r.get("image"), str) else r.get("image", [])) for r in rows
        ]
        + [[{"bytes": b"not an image", "path": None}]],
        "conversations": [r["conversations"] for r in rows] + [_turns("<image>\nQ", "A")],
    }
    features = datasets.Features({
        "id": datasets.Value("string"),
        "images": datasets.List(datasets.Image()),
        "conversations": datasets.List({"from": datasets.Value("string"), "value": datasets.Value("string")}),
    })  # fmt: skip
    datasets.Dataset.from_dict(table, features=features).to_parquet(tmp_path / "train.parquet")
    log = BadSampleLog()
    loaded = HFLocalDataset(tmp_path / "train.parquet", log=log, cache_dir=tmp_path / "cache")
    reference = {e.id: e for e in llava_json(jsonl, root, BadSampleLog())}
    assert len(loaded) == len(rows) + 1 and loaded.modalities() == [True, True, False, True, True, True]
    assert loaded.lengths()[:3] == [6, 7, 3]
    for example in loaded.examples():
        expected = reference[example.id]
        assert example.messages == expected.messages
        assert [np.asarray(i).tolist() for i in example.images] == [
            np.asarray(i).tolist() for i in expected.images
        ]
    assert dict(log.counts) == {"corrupt_image": 1}
    with pytest.raises(BadSample, match="'corrupt' \\(corrupt_image\\)"):
        HFLocalDataset(
            tmp_path / "train.parquet", log=BadSampleLog(strict=True), cache_dir=tmp_path / "cache"
        )[5]


def test_parquet_with_image_paths_stays_inside_its_root(root, tmp_path):
    import datasets

    rows = {
        "image": ["red.png", "../outside.png", None],
        "conversations": [_turns("<image>\nQ", "A")] * 2 + [_turns("Q", "A")],
    }
    datasets.Dataset.from_dict(rows).to_parquet(tmp_path / "paths.parquet")
    log = BadSampleLog()
    loaded = HFLocalDataset(
        [tmp_path / "paths.parquet"], image_root=root, log=log, cache_dir=tmp_path / "cache"
    )
    assert (
        loaded[0].images[0].getpixel((0, 0)) == (255, 0, 0) and loaded[1] is None and loaded[2].images == []
    )
    assert dict(log.counts) == {"path_escape": 1}


def test_data_prepare_checks_the_corpora_and_writes_each_presets_mixtures(tmp_path, capsys):
    corpus = tmp_path / "llava"
    for folder in ("coco/train2017", "gqa/images", "ocr_vqa/images", "LLaVA-Pretrain/images/00000", "sharegpt4v",
                   "sam/images"):
        (corpus / folder).mkdir(parents=True)
    for name in (
        "coco/train2017/1.jpg",
        "coco/train2017/2.jpg",
        "gqa/images/3.jpg",
        "LLaVA-Pretrain/images/00000/0.jpg",
        "sam/images/s.jpg",
    ):
        Image.new("RGB", (8, 8), "red").save(corpus / name)
    Image.new("RGB", (8, 8), "red").save(corpus / "ocr_vqa/images/4.gif")  # JSON says .jpg
    (corpus / "gqa/images/5.jpg").write_bytes(b"junk")
    instruct = [
        _record("c1", "coco/train2017/1.jpg"), _record("c2", "coco/train2017/2.jpg"), _record("g3", "gqa/images/3.jpg"),
        _record("o4", "ocr_vqa/images/4.jpg"), _record("v5", "vg/VG_100K/5.jpg"), _record("g5", "gqa/images/5.jpg"),
        _record("text", human="Hi", gpt="Hello"), _record("roles", "coco/train2017/1.jpg") | {"conversations": []},
    ]  # fmt: skip
    (corpus / "llava_v1_5_mix665k.json").write_text(json.dumps(instruct))
    pretrain = [_record("p0", "00000/0.jpg"), _record("p1", "00000/1.jpg")]
    (corpus / "LLaVA-Pretrain" / "blip_laion_cc_sbu_558k.json").write_text(json.dumps(pretrain))
    (corpus / "sharegpt4v" / "share-captioner_coco_lcs_sam_1246k_1107.json").write_text(
        json.dumps([_record("s0", "sam/images/s.jpg"), _record("s1", "coco/train2017/2.jpg")]))

    assert main(["data", "prepare", str(corpus), "--decode"]) == 0
    out = capsys.readouterr().out
    assert "records: 8, usable: 4" in out and "records: 2, usable: 1" in out
    assert "bad missing_image: 2 (e.g. o4, v5)" in out and "bad corrupt_image: 1 (e.g. g5)" in out
    assert "bad bad_conversation: 1 (e.g. roles)" in out
    assert "images ocr_vqa/: 1 referenced, 1 missing" in out and "images vg/: 1 referenced, 1 missing" in out
    assert "1 missing images exist with another extension" in out
    written = {"llava15_pretrain.yaml", "llava15_finetune.yaml", "convllava_stage1.yaml"}
    assert {p.name for p in corpus.glob("*.yaml")} == written  # stage 2 also needs ShareGPT4V's cap100k
    assert "not found: sharegpt4v_cap100k" in out and "not written (a corpus is missing): convllava_stage2.yaml" in out

    finetune = load_mixture(corpus / "llava15_finetune.yaml", BadSampleLog())
    assert len(finetune) == 8 and [e.id for e in finetune.parts[0].examples()] == ["c1", "c2", "g3", "text"]
    pre = yaml.safe_load((corpus / "llava15_pretrain.yaml").read_text())["datasets"][0]
    assert pre == {"path": "LLaVA-Pretrain/blip_laion_cc_sbu_558k.json", "image_root": "LLaVA-Pretrain/images",
                   "sampling": "all"}
    assert load_mixture(corpus / "llava15_pretrain.yaml", BadSampleLog())[0].id == "p0"
    assert [e.id for e in load_mixture(corpus / "convllava_stage1.yaml", BadSampleLog()).parts[0].examples()] == ["s0", "s1"]
    assert main(["data", "check", str(corpus / "llava_v1_5_mix665k.json"), "--strict"]) == 1
    assert "bad corrupt_image: 1 (e.g. g5)" in capsys.readouterr().out


def test_imagefolder_with_metadata(tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    Image.new("RGB", (8, 8), "blue").save(folder / "x.png")
    (folder / "metadata.jsonl").write_text(
        json.dumps({"file_name": "x.png", "conversations": _turns("Q", "A")})
    )
    example = HFLocalDataset(folder, log=BadSampleLog(strict=True), cache_dir=tmp_path / "cache")[0]
    assert example.images[0].getpixel((0, 0)) == (0, 0, 255) and example.messages[0]["content"][0] == {
        "type": "image"
    }
