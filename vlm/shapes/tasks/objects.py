"""``objects``: yes/no object-existence questions; ``objects_noisy_teacher``: the same answered by a teacher that
hallucinates co-occurring objects (a start model for POVID to correct)."""

from __future__ import annotations

import random

from vlm.shapes.language import record
from vlm.shapes.questions import object_probes
from vlm.shapes.world import EMITTERS, Scene


@EMITTERS.register("objects")
def objects(scene: Scene, rng: random.Random, uid: str, path: str) -> list[dict]:
    return [record(f"{uid}_{k}", path, [(q["question"], q["answer"])], type="existence", answer=q["answer"])
            for k, q in enumerate(object_probes(scene, rng))]


TEACHER_HALLUCINATION_RATE = 0.4


@EMITTERS.register("objects_noisy_teacher")
def objects_noisy_teacher(scene: Scene, rng: random.Random, uid: str, path: str) -> list[dict]:
    """`objects` as answered by a teacher that hallucinates co-occurring objects, as GPT-written
    instruction data does: an absent object sharing a colour or shape with one in the image is called
    present with probability `TEACHER_HALLUCINATION_RATE`. Each record keeps the true answer in ``truth``."""
    out = []
    for k, q in enumerate(object_probes(scene, rng)):
        answer = q["answer"]
        if answer == "no" and _shares_attribute(scene, q["object"]) and rng.random() < TEACHER_HALLUCINATION_RATE:
            answer = "yes"
        out.append(record(f"{uid}_{k}", path, [(q["question"], answer)], type="existence", answer=answer,
                          truth=q["answer"], object=" ".join(q["object"])))
    return out


def _shares_attribute(scene: Scene, pair: tuple[str, str]) -> bool:
    return any(o.colour == pair[0] or o.shape == pair[1] for o in scene.objects)
