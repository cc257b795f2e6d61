"""The questions asked about a scene: short-answer VQA of every type, object-existence probes and POPE
negatives. Each returns plain dicts; the task emitters (`vlm.shapes.tasks`) turn them into records."""

from __future__ import annotations

import random
from collections import Counter
from functools import lru_cache

from vlm.shapes.language import article, relation
from vlm.shapes.world import COLOURS, PAIR_WEIGHTS, PAIRS, SHAPES, Obj, Scene, generate_scene


def _unique(scene: Scene, attr: str) -> list[Obj]:
    counts = Counter(getattr(o, attr) for o in scene.objects)
    return [o for o in scene.objects if counts[getattr(o, attr)] == 1]


def absent_pair(scene: Scene, rng: random.Random) -> tuple[str, str]:
    present = {(o.colour, o.shape) for o in scene.objects}
    return rng.choice([(c, s) for c in COLOURS for s in SHAPES if (c, s) not in present])


def absent_by_frequency(scene: Scene, rng: random.Random, k: int = 1) -> list[tuple[str, str]]:
    """Absent objects drawn by how often objects occur, as present ones are: the name asked about then
    does not tell the answer."""
    present = {(o.colour, o.shape) for o in scene.objects}
    prior = [(p, w) for p, w in zip(PAIRS, PAIR_WEIGHTS, strict=True) if p not in present]
    return rng.choices([p for p, _ in prior], weights=[w for _, w in prior], k=k)


def vqa_questions(scene: Scene, rng: random.Random) -> list[dict]:
    """One question per applicable type: dicts with type, question, answer."""
    qs = []
    by_shape, by_colour = _unique(scene, "shape"), _unique(scene, "colour")
    if by_shape:
        o = rng.choice(by_shape)
        qs.append(("colour", f"Answer with one word. What colour is the {o.shape}?", o.colour))
    if by_colour:
        o = rng.choice(by_colour)
        qs.append(("shape", f"Answer with one word. What shape is the {o.colour} object?", o.shape))
    qs.append(("count", "Answer with a number. How many objects are there?", str(len(scene.objects))))
    if rng.random() < 0.5:
        colour, shape = rng.choice(scene.objects).name.split()
        answer = "yes"
    else:
        ((colour, shape),) = absent_by_frequency(scene, rng)
        answer = "no"
    qs.append(("existence", f"Answer yes or no. Is there {article(colour)} {shape}?", answer))
    pairs = [(a, b) for a in scene.objects for b in scene.objects if a is not b and relation(a, b)]
    if pairs:
        a, b = rng.choice(pairs)
        q = f"Answer left, right, above or below. Where is the {a.name} relative to the {b.name}?"
        qs.append(("spatial", q, relation(a, b)))
    tiny = [o for o in scene.objects if o.size == "tiny"]
    if tiny:
        attr = rng.choice(("colour", "shape"))
        qs.append(("small", f"Answer with one word. What {attr} is the tiny object?", getattr(tiny[0], attr)))
    return [{"type": t, "question": q, "answer": a} for t, q, a in qs]


@lru_cache(maxsize=1)
def popular_objects(n_scenes: int = 500) -> tuple[tuple[str, str], ...]:
    """All (colour, shape) pairs, most frequent first, counted over the first train scenes."""
    counts = Counter((o.colour, o.shape) for i in range(n_scenes) for o in generate_scene(i).objects)
    pairs = [(c, s) for c in COLOURS for s in SHAPES]
    return tuple(sorted(pairs, key=lambda p: -counts[p]))


def pope_negative(scene: Scene, rng: random.Random, category: str) -> tuple[str, str]:
    present = {(o.colour, o.shape) for o in scene.objects}
    if category == "random":
        return absent_pair(scene, rng)
    if category == "popular":
        return next(p for p in popular_objects() if p not in present)
    o = rng.choice(scene.objects)  # adversarial: differs from a present object in colour or shape only
    near = [(c, o.shape) for c in COLOURS] + [(o.colour, s) for s in SHAPES]
    return rng.choice([p for p in near if p not in present])


EXISTENCE_WORDINGS = (
    "Answer yes or no. Is there {obj}?",
    "Answer yes or no. Is there {obj} in the image?",
    "Answer yes or no. Does the image contain {obj}?",
    "Answer yes or no. Can you see {obj} in this picture?",
)


def object_probes(scene: Scene, rng: random.Random) -> list[dict]:
    """Object-existence questions, yes/no balanced: three objects of the scene and three absent ones that
    plausibly could be there (one sharing a colour or shape with a present object, as co-occurrence
    hallucinations do; two drawn by how often objects occur, so an object's name alone does not tell
    the answer), in varied wordings."""
    present = [(o.colour, o.shape) for o in rng.choices(scene.objects, k=3)]
    absent = [pope_negative(scene, rng, "adversarial"), *absent_by_frequency(scene, rng, k=2)]
    pairs = [(p, "yes") for p in present] + [(p, "no") for p in absent]
    return [{"type": "existence", "question": rng.choice(EXISTENCE_WORDINGS).format(obj=article(f"{c} {s}")),
             "answer": answer, "object": (c, s)} for (c, s), answer in pairs]
