"""POVID pairs on the shapes world: ground-truth answers against versions with hallucinations injected
from the scene's own ground truth (object, attribute, count, relation and existence swaps)."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

from vlm.data.povid import HallucinationRewriter
from vlm.shapes.language import OPPOSITE, RELATION_WORDS, caption_text, relation
from vlm.shapes.questions import absent_pair, object_probes, vqa_questions
from vlm.shapes.world import COLOURS, SHAPES, Scene, SyntheticWorld


class RuleRewriter:
    """From the synthetic ground truth (``truth["scene"]``, ``truth["type"]``): swap an object's colour or
    shape for one seen elsewhere in the scene (co-occurrence, as POVID prefers), count +-1, flip a
    relation or a yes/no, or add an absent object to a caption."""

    def __init__(self, seed: int = 0):
        self.seed = seed

    def __call__(self, question: str, answer: str, truth: dict[str, Any]) -> str | None:
        scene: Scene = truth["scene"]
        rng = random.Random(f"{self.seed}:{scene.seed}:{question}")
        kind = truth["type"]
        if kind in ("colour", "shape"):
            return _other(rng, answer, [getattr(o, kind) for o in scene.objects], COLOURS if kind == "colour" else SHAPES)
        if kind == "small":
            values = COLOURS if answer in COLOURS else SHAPES
            return _other(rng, answer, [], values)
        if kind == "count":
            n = int(answer)
            return str(n + 1 if n == 1 or rng.random() < 0.5 else n - 1)
        if kind == "existence":
            return "no" if answer == "yes" else "yes"
        if kind == "spatial":
            return OPPOSITE[answer]
        if kind == "caption":
            return _caption_hallucination(scene, rng)
        return None


def _other(rng: random.Random, answer: str, seen: list[str], values) -> str:
    near = sorted({v for v in seen if v != answer})
    return rng.choice(near) if near and rng.random() < 0.7 else rng.choice([v for v in values if v != answer])


def _caption_hallucination(scene: Scene, rng: random.Random) -> str:
    objs = sorted(scene.objects, key=lambda o: o.centre[0])
    choice = rng.random()
    if len(objs) == 2 and relation(objs[0], objs[1]) and choice < 0.3:
        r = relation(objs[0], objs[1])
        return caption_text(scene).replace(RELATION_WORDS[r], RELATION_WORDS[OPPOSITE[r]], 1)
    if choice < 0.6:  # an object that is not there
        colour, shape = absent_pair(scene, rng)
        text = caption_text(scene).rstrip(".")
        return f"{text}; there is also a {colour} {shape}."
    i = rng.randrange(len(objs))
    kind = rng.choice(("colour", "shape"))
    new = _other(rng, getattr(objs[i], kind), [getattr(o, kind) for o in objs], COLOURS if kind == "colour" else SHAPES)
    objects = [replace(o, **{kind: new}) if o is objs[i] else o for o in scene.objects]
    return caption_text(Scene(scene.seed, objects))


def povid_records(world: SyntheticWorld, index: int, rewriter: HallucinationRewriter) -> list[dict]:
    """Preference records for one scene: its caption, every VQA question and `object_probes`, chosen =
    ground truth, rejected = ``rewriter``'s hallucinated version (pairs it cannot rewrite are left out)."""
    scene = world.scene(index)
    rng = random.Random(f"povid:{scene.seed}")
    items = [("caption", "Describe the image briefly.", caption_text(scene))]
    items += [(q["type"], q["question"], q["answer"]) for q in vqa_questions(scene, rng)]
    items += [(q["type"], q["question"], q["answer"]) for q in object_probes(scene, rng)]
    out = []
    for kind, question, answer in items:
        rejected = rewriter(question, answer, {"scene": scene, "type": kind})
        if rejected is None or rejected == answer:
            continue
        out.append({
            "id": f"povid_{world.split}_{index:07d}_{len(out)}_{kind}", "image": world.image_path(index),
            "prompt": "<image>\n" + question, "chosen": answer, "rejected": rejected, "type": kind,
        })
    return out
