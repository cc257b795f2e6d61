"""``pref``: DPO pairs, a caption against one with a swapped attribute or relation, a count against one off by one."""

from __future__ import annotations

import random
from dataclasses import replace

from vlm.shapes.language import CAPTION_PROMPTS, OPPOSITE, RELATION_WORDS, caption_text, relation
from vlm.shapes.world import COLOURS, EMITTERS, SHAPES, Scene


def _swap(scene: Scene, rng: random.Random) -> tuple[Scene, dict]:
    """Copy of the scene with one attribute of one object changed to a value absent from the scene."""
    i = rng.randrange(len(scene.objects))
    o = scene.objects[i]
    kind = rng.choice(("colour", "shape"))
    used = {getattr(x, kind) for x in scene.objects}
    new = rng.choice([v for v in (COLOURS if kind == "colour" else SHAPES) if v not in used])
    objs = list(scene.objects)
    objs[i] = replace(o, **{kind: new})
    return Scene(scene.seed, objs), {"kind": kind, "from": getattr(o, kind), "to": new}


@EMITTERS.register("pref")
def pref(scene: Scene, rng: random.Random, uid: str, path: str) -> list[dict]:
    """DPO pairs: a caption with one swapped attribute or relation, and a count off by one."""
    chosen = caption_text(scene)
    objs = sorted(scene.objects, key=lambda o: o.centre[0])
    if len(objs) == 2 and relation(objs[0], objs[1]) and rng.random() < 0.5:
        r = relation(objs[0], objs[1])
        rejected = chosen.replace(RELATION_WORDS[r], RELATION_WORDS[OPPOSITE[r]], 1)
        fact = {"kind": "relation", "from": r, "to": OPPOSITE[r]}
    else:
        fake, fact = _swap(scene, rng)
        rejected = caption_text(fake)
    n = len(scene.objects)
    wrong = n + 1 if n == 1 or rng.random() < 0.5 else n - 1
    return [
        {
            "id": f"{uid}_caption",
            "image": path,
            "prompt": "<image>\n" + rng.choice(CAPTION_PROMPTS),
            "chosen": chosen,
            "rejected": rejected,
            "hallucination": fact,
        },
        {
            "id": f"{uid}_count",
            "image": path,
            "prompt": "<image>\nAnswer with a number. How many objects are there?",
            "chosen": str(n),
            "rejected": str(wrong),
            "hallucination": {"kind": "count", "from": n, "to": wrong},
        },
    ]
