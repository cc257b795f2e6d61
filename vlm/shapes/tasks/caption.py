"""``caption``: one short caption per scene (objects left to right, or a relation between two)."""

from __future__ import annotations

import random

from vlm.shapes.language import CAPTION_PROMPTS, caption_text, record
from vlm.shapes.world import EMITTERS, Scene


@EMITTERS.register("caption")
def caption(scene: Scene, rng: random.Random, uid: str, path: str) -> list[dict]:
    return [record(uid, path, [(rng.choice(CAPTION_PROMPTS), caption_text(scene))], type="caption")]
