"""``pope``: POPE's three categories, one present and one absent object each (yes/no balanced exactly)."""

from __future__ import annotations

import random

from vlm.shapes.language import article, record
from vlm.shapes.questions import pope_negative
from vlm.shapes.world import EMITTERS, Scene


@EMITTERS.register("pope")
def pope(scene: Scene, rng: random.Random, uid: str, path: str) -> list[dict]:
    """Per category one present and one absent probe, so yes/no is balanced exactly."""
    out = []
    for category in ("random", "popular", "adversarial"):
        yes = rng.choice(scene.objects)
        probes = [((yes.colour, yes.shape), "yes"), (pope_negative(scene, rng, category), "no")]
        for (colour, shape), answer in probes:
            q = f"Answer yes or no. Is there {article(colour)} {shape} in the image?"
            out.append(
                record(
                    f"{uid}_{category}_{answer}",
                    path,
                    [(q, answer)],
                    type="pope",
                    category=category,
                    answer=answer,
                    object=f"{colour} {shape}",
                )
            )
    return out
