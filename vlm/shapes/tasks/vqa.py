"""``vqa`` (one record per question type), ``instruct`` (2-3 of them as turns) and ``dialog`` (all of them)."""

from __future__ import annotations

import random

from vlm.shapes.language import record
from vlm.shapes.questions import object_probes, vqa_questions
from vlm.shapes.world import EMITTERS, Scene


@EMITTERS.register("vqa")
def vqa(scene: Scene, rng: random.Random, uid: str, path: str) -> list[dict]:
    return [
        record(f"{uid}_{q['type']}", path, [(q["question"], q["answer"])], type=q["type"], answer=q["answer"])
        for q in vqa_questions(scene, rng)
    ]


@EMITTERS.register("instruct")
def instruct(scene: Scene, rng: random.Random, uid: str, path: str) -> list[dict]:
    """Multi-turn: 2-3 short-answer questions about the same image."""
    qs = vqa_questions(scene, rng)
    picked = rng.sample(qs, min(len(qs), rng.randint(2, 3)))
    turns = [(q["question"], q["answer"]) for q in picked]
    return [record(uid, path, turns, type="multi", types=[q["type"] for q in picked])]


@EMITTERS.register("dialog")
def dialog(scene: Scene, rng: random.Random, uid: str, path: str) -> list[dict]:
    """Every question of `vqa_questions` about one image and two of `object_probes` (one present, one
    absent object), in random order, as one conversation: one image encoding then serves every answer
    (LLaVA's instruction data is multi-turn likewise)."""
    probes = object_probes(scene, rng)  # three present objects, then three absent ones
    qs = [*vqa_questions(scene, rng), rng.choice(probes[:3]), rng.choice(probes[3:])]
    rng.shuffle(qs)
    turns = [(q["question"], q["answer"]) for q in qs]
    return [record(uid, path, turns, type="multi", types=[q["type"] for q in qs])]
