import io
import json
import random
import re
from collections import Counter

import pytest

from vlm.cli import main
from vlm.shapes.language import relation
from vlm.shapes.questions import popular_objects, vqa_questions
from vlm.shapes.tasks.objects import TEACHER_HALLUCINATION_RATE
from vlm.shapes.world import COLOURS, EMITTERS, SHAPES, SyntheticWorld, generate_scene, scene_seed

N = 60


@pytest.fixture(scope="module")
def world() -> SyntheticWorld:
    return SyntheticWorld("train", 64)


def png_bytes(image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def answer(rec: dict) -> str:
    return rec["conversations"][-1]["value"]


def test_determinism():
    a, b = SyntheticWorld("val", 96), SyntheticWorld("val", 96)
    for i in range(10):
        assert png_bytes(a.image(i)) == png_bytes(b.image(i))
        for task in EMITTERS.keys():
            assert a.records(i, task) == b.records(i, task)


def test_splits_disjoint():
    seeds = {s: {scene_seed(s, i) for i in range(1000)} for s in ("train", "val", "test")}
    assert not seeds["train"] & seeds["val"] and not seeds["train"] & seeds["test"]
    assert not seeds["val"] & seeds["test"]
    assert SyntheticWorld("train").scene(0) != SyntheticWorld("test").scene(0)
    with pytest.raises(ValueError):
        scene_seed("dev", 0)


def test_scenes_are_valid():
    tiny_seen = False
    for i in range(200):
        objs = generate_scene(i).objects
        assert 1 <= len(objs) <= 5
        assert len({o.name for o in objs}) == len(objs)
        for k, o in enumerate(objs):
            assert o.colour in COLOURS and o.shape in SHAPES
            assert 0 <= o.box[0] < o.box[2] <= 1 and 0 <= o.box[1] < o.box[3] <= 1
            for p in objs[k + 1 :]:
                assert (
                    o.box[2] <= p.box[0]
                    or p.box[2] <= o.box[0]
                    or o.box[3] <= p.box[1]
                    or p.box[3] <= o.box[1]
                )
        tiny_seen |= any(o.size == "tiny" for o in objs)
    assert tiny_seen


def test_render_draws_objects_and_tiny_scales():
    for seed in range(30):
        scene = generate_scene(seed)
        image = scene.render(128)
        assert image.size == (128, 128)
        for o in scene.objects:
            centre = tuple(int(v * 128) for v in o.centre)
            assert image.getpixel(centre) == COLOURS[o.colour], (seed, o)
    scene = next(s for s in map(generate_scene, range(100)) if any(o.size == "tiny" for o in s.objects))
    tiny = next(o for o in scene.objects if o.size == "tiny")

    def tiny_pixels(size: int) -> int:
        crop = scene.render(size).crop(tuple(round(v * size) for v in tiny.box))
        return sum(n for n, colour in crop.getcolors() if colour == COLOURS[tiny.colour])

    assert tiny_pixels(64) <= 20 and tiny_pixels(256) >= 100


def test_examples_are_chat_format(world):
    (ex,) = world.examples(0, "instruct")
    assert len(ex.images) == 1 and ex.images[0].size == (64, 64)
    assert ex.messages[0]["role"] == "user" and ex.messages[0]["content"][0] == {"type": "image"}
    assert [m["role"] for m in ex.messages] == ["user", "assistant"] * (len(ex.messages) // 2)


def check_answer(scene, kind: str, q: str, a: str) -> None:
    """``a`` is the right reply to question ``q`` (of type ``kind``) about ``scene``."""
    names = {o.name for o in scene.objects}
    q = q.removeprefix("<image>\n")
    if kind == "count":
        assert a == str(len(scene.objects))
    elif kind == "existence":  # any of the wordings
        (name,) = [f"{c} {s}" for c in COLOURS for s in SHAPES if f" {c} {s}" in q]
        assert (name in names) == (a == "yes")
    elif kind == "spatial":
        first, second = re.search(r"Where is the (.+) relative to the (.+)\?", q).groups()
        oa = next(o for o in scene.objects if o.name == first)
        ob = next(o for o in scene.objects if o.name == second)
        dx, dy = oa.centre[0] - ob.centre[0], oa.centre[1] - ob.centre[1]
        expected = ("left" if dx < 0 else "right") if abs(dx) >= abs(dy) else ("above" if dy < 0 else "below")
        assert a == expected == relation(oa, ob)
    elif kind == "small":
        tiny = [o for o in scene.objects if o.size == "tiny"]
        assert a in (tiny[0].colour, tiny[0].shape)
    elif kind == "colour":
        shape = q.split("the ")[1].split("?")[0]
        assert [o.colour for o in scene.objects if o.shape == shape] == [a]
    elif kind == "shape":
        colour = q.split("the ")[1].split(" object")[0]
        assert [o.shape for o in scene.objects if o.colour == colour] == [a]
    assert len(a.split()) == 1


def test_vqa_answers_match_scene(world):
    types = set()
    for i in range(N):
        for rec in world.records(i, "vqa"):
            types.add(rec["type"])
            q, a = rec["conversations"][0]["value"], answer(rec)
            assert q.startswith("<image>\n") and a == rec["answer"]
            check_answer(world.scene(i), rec["type"], q, a)
    assert types == {"colour", "shape", "count", "existence", "spatial", "small"}


def test_instruct_is_multi_turn(world):
    for i in range(N):
        (rec,) = world.records(i, "instruct")
        turns = rec["conversations"]
        assert 4 <= len(turns) <= 6 and len(rec["types"]) == len(turns) // 2
        assert [t["from"] for t in turns] == ["human", "gpt"] * (len(turns) // 2)
        assert sum("<image>" in t["value"] for t in turns) == 1


def test_dialog_asks_every_question_once_and_two_object_probes(world):
    for i in range(N):
        (rec,) = world.records(i, "dialog")
        turns, scene = rec["conversations"], world.scene(i)
        expected = sorted(
            [*(q["type"] for q in vqa_questions(scene, random.Random(0))), "existence", "existence"]
        )  # types do not depend on rng
        assert sorted(rec["types"]) == expected
        assert [t["from"] for t in turns] == ["human", "gpt"] * len(expected)
        assert turns[0]["value"].startswith("<image>\n") and sum("<image>" in t["value"] for t in turns) == 1
        for kind, asked, reply in zip(rec["types"], turns[::2], turns[1::2], strict=True):
            check_answer(scene, kind, asked["value"], reply["value"])
        existence = [reply["value"] for kind, reply in zip(rec["types"], turns[1::2], strict=True) if kind == "existence"]
        assert existence.count("yes") >= 1 and existence.count("no") >= 1


def test_grounding_boxes_match_scene(world):
    for i in range(N):
        (rec,) = world.records(i, "ground")
        boxes = {o.box for o in world.scene(i).objects}
        assert tuple(rec["box"]) in boxes
        assert all(0 <= v <= 1 for v in rec["box"])
        assert json.loads(answer(rec)) == rec["box"]


def test_pope_balanced_and_negatives_absent(world):
    counts = {}
    for i in range(N):
        names = {o.name for o in world.scene(i).objects}
        for rec in world.records(i, "pope"):
            key = (rec["category"], answer(rec))
            counts[key] = counts.get(key, 0) + 1
            assert (rec["object"] in names) == (answer(rec) == "yes")
            if rec["category"] == "adversarial" and answer(rec) == "no":
                colour, shape = rec["object"].split()
                assert any((o.colour == colour) != (o.shape == shape) for o in world.scene(i).objects)
            if rec["category"] == "popular" and answer(rec) == "no":
                ranked = [" ".join(p) for p in popular_objects()]
                assert all(r in names for r in ranked[: ranked.index(rec["object"])])
    assert set(counts) == {(c, a) for c in ("random", "popular", "adversarial") for a in ("yes", "no")}
    assert len(set(counts.values())) == 1


def test_object_probes_balanced_truthful_with_a_near_miss(world):
    asked = {"yes": Counter(), "no": Counter()}
    for i in range(N):
        scene = world.scene(i)
        names = {o.name for o in scene.objects}
        records = world.records(i, "objects")
        assert [answer(r) for r in records] == ["yes"] * 3 + ["no"] * 3
        objs = [asked_object(rec) for rec in records]
        for rec, obj in zip(records, objs, strict=True):
            assert (obj in names) == (answer(rec) == "yes")
            asked[answer(rec)][obj] += 1
        colour, shape = objs[3].split()
        assert any((o.colour == colour) != (o.shape == shape) for o in scene.objects)
    # absent objects are drawn by frequency, like present ones: the most asked-about object is asked both ways
    top = asked["yes"].most_common(1)[0][0]
    assert asked["no"][top] > 0


def asked_object(rec):
    question = rec["conversations"][0]["value"]
    return next(f"{c} {s}" for c in COLOURS for s in SHAPES if f" {c} {s}" in question)


def test_noisy_teacher_calls_only_co_occurring_absent_objects_present(world):
    flips = {True: Counter(), False: Counter()}  # shares a colour or shape with a present object -> (flipped?)
    for i in range(400):
        scene = world.scene(i)
        for rec in world.records(i, "objects_noisy_teacher"):
            obj = asked_object(rec)
            assert rec["object"] == obj
            assert rec["truth"] == ("yes" if obj in {o.name for o in scene.objects} else "no")
            assert rec["answer"] == answer(rec)
            if rec["truth"] == "yes":
                assert answer(rec) == "yes"
                continue
            colour, shape = obj.split()
            flips[any(o.colour == colour or o.shape == shape for o in scene.objects)][answer(rec) == "yes"] += 1
    assert flips[False][True] == 0
    rate = flips[True][True] / sum(flips[True].values())
    assert abs(rate - TEACHER_HALLUCINATION_RATE) < 0.05, rate


def test_preference_differs_in_one_fact(world):
    kinds = set()
    for i in range(N):
        for rec in world.records(i, "pref"):
            assert set(rec) >= {"id", "image", "prompt", "chosen", "rejected"}
            chosen, rejected = rec["chosen"].split(), rec["rejected"].split()
            assert rec["chosen"] != rec["rejected"] and len(chosen) == len(rejected)
            diff = [(c, r) for c, r in zip(chosen, rejected, strict=True) if c != r]
            assert len(diff) == 1
            fact = rec["hallucination"]
            kinds.add(fact["kind"])
            assert [w.rstrip(".,") for w in diff[0]] == [str(fact["from"]), str(fact["to"])]
            assert (rec["chosen"] == caption_of(world, i)) or fact["kind"] == "count"
    assert kinds == {"colour", "shape", "relation", "count"}


def caption_of(world, i):
    return answer(world.records(i, "caption")[0])


def test_synth_command_writes_a_llava_corpus(tmp_path):
    assert main(["data", "synth", "--out", str(tmp_path), "--n", "8", "--size", "64", "--tasks", "caption,vqa"]) == 0
    for task in ("caption", "vqa"):
        records = json.loads((tmp_path / f"{task}.json").read_text())
        assert records and all((tmp_path / rec["image"]).is_file() for rec in records)
    assert len(list((tmp_path / "images").iterdir())) == 8  # one file per scene: the tasks share its image
    assert main(["data", "synth", "--out", str(tmp_path / "c"), "--n", "1", "--tasks", "captions"]) == 2


def test_ids_unique_across_tasks(world):
    ids = [rec["id"] for i in range(20) for task in EMITTERS.keys() for rec in world.records(i, task)]
    assert len(ids) == len(set(ids))
