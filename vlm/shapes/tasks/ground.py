"""``ground``: the bounding box of one object, named by size, colour and shape."""

from __future__ import annotations

import random

from vlm.shapes.language import box_text, phrase, record
from vlm.shapes.world import EMITTERS, Scene


@EMITTERS.register("ground")
def ground(scene: Scene, rng: random.Random, uid: str, path: str) -> list[dict]:
    o = rng.choice(scene.objects)
    q = f"Give the bounding box of the {phrase(o)}."
    return [record(uid, path, [(q, box_text(o.box))], type="ground", box=list(o.box), object=phrase(o))]
