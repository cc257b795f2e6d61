"""Question emitters for the shapes world, all in LLaVA format.

Each emitter takes ``(scene, rng, uid, image_path)`` and returns a list of records.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from functools import lru_cache

from vlm.data.synthetic import COLOURS, PAIR_WEIGHTS, PAIRS, SHAPES, Obj, Scene, generate_scene

CAPTION_PROMPTS = ("Describe the image briefly.", "What is in this picture?", "Write a short caption.")
MIN_GAP = 0.1  # centres must differ by this much for a relation to be stated


def conversation(path: str, turns: list[tuple[str, str]]) -> list[dict]:
    """LLaVA turns; the image marker goes in front of the first human message."""
    out = []
    for k, (question, answer) in enumerate(turns):
        out.append({"from": "human", "value": ("<image>\n" if k == 0 else "") + question})
        out.append({"from": "gpt", "value": answer})
    return out


def record(uid: str, path: str, turns: list[tuple[str, str]], **extra) -> dict:
    return {"id": uid, "image": path, "conversations": conversation(path, turns), **extra}


def article(word: str) -> str:
    """Indefinite article for a noun phrase."""
    return ("an " if word[0] in "aeiou" else "a ") + word


def phrase(obj: Obj) -> str:
    return f"{obj.size} {obj.colour} {obj.shape}"


def relation(a: Obj, b: Obj) -> str | None:
    """Dominant direction of a relative to b ("left", "right", "above", "below"), or None if too close."""
    dx, dy = a.centre[0] - b.centre[0], a.centre[1] - b.centre[1]
    if max(abs(dx), abs(dy)) < MIN_GAP:
        return None
    if abs(dx) >= abs(dy):
        return "left" if dx < 0 else "right"
    return "above" if dy < 0 else "below"


RELATION_WORDS = {"left": "to the left of", "right": "to the right of", "above": "above", "below": "below"}
OPPOSITE = {"left": "right", "right": "left", "above": "below", "below": "above"}


def caption_text(scene: Scene) -> str:
    objs = sorted(scene.objects, key=lambda o: o.centre[0])
    if len(objs) == 1:
        return f"A {phrase(objs[0])}."
    if len(objs) == 2 and relation(objs[0], objs[1]) is not None:
        return f"A {phrase(objs[0])} {RELATION_WORDS[relation(objs[0], objs[1])]} a {phrase(objs[1])}."
    names = [f"a {phrase(o)}" for o in objs]
    body = ", ".join(names[:-1]) + " and " + names[-1]
    return f"{body[0].upper()}{body[1:]}, from left to right."


def caption(scene: Scene, rng: random.Random, uid: str, path: str) -> list[dict]:
    return [record(uid, path, [(rng.choice(CAPTION_PROMPTS), caption_text(scene))], type="caption")]


def _unique(scene: Scene, attr: str) -> list[Obj]:
    counts = Counter(getattr(o, attr) for o in scene.objects)
    return [o for o in scene.objects if counts[getattr(o, attr)] == 1]


def _absent_pair(scene: Scene, rng: random.Random) -> tuple[str, str]:
    present = {(o.colour, o.shape) for o in scene.objects}
    return rng.choice([(c, s) for c in COLOURS for s in SHAPES if (c, s) not in present])


def vqa_questions(scene: Scene, rng: random.Random) -> list[dict]:
    """One question per applicable type: dicts with type, question, answer."""
    qs = []
    by_shape, by_colour = _unique(scene, "shape"), _unique(scene, "colour")
    if by_shape:
        o = rng.choice(by_shape)
        qs.append(("colour", f"What colour is the {o.shape}? Answer with one word.", o.colour))
    if by_colour:
        o = rng.choice(by_colour)
        qs.append(("shape", f"What shape is the {o.colour} object? Answer with one word.", o.shape))
    qs.append(("count", "How many objects are there? Answer with a number.", str(len(scene.objects))))
    if rng.random() < 0.5:
        colour, shape = rng.choice(scene.objects).name.split()
        answer = "yes"
    else:
        colour, shape = _absent_pair(scene, rng)
        answer = "no"
    qs.append(("existence", f"Is there {article(colour)} {shape}? Answer yes or no.", answer))
    pairs = [(a, b) for a in scene.objects for b in scene.objects if a is not b and relation(a, b)]
    if pairs:
        a, b = rng.choice(pairs)
        q = f"Where is the {a.name} relative to the {b.name}? Answer left, right, above or below."
        qs.append(("spatial", q, relation(a, b)))
    tiny = [o for o in scene.objects if o.size == "tiny"]
    if tiny:
        attr = rng.choice(("colour", "shape"))
        qs.append(("small", f"What {attr} is the tiny object? Answer with one word.", getattr(tiny[0], attr)))
    return [{"type": t, "question": q, "answer": a} for t, q, a in qs]


def vqa(scene: Scene, rng: random.Random, uid: str, path: str) -> list[dict]:
    return [
        record(f"{uid}_{q['type']}", path, [(q["question"], q["answer"])], type=q["type"], answer=q["answer"])
        for q in vqa_questions(scene, rng)
    ]


def instruct(scene: Scene, rng: random.Random, uid: str, path: str) -> list[dict]:
    """Multi-turn: 2-3 short-answer questions about the same image."""
    qs = vqa_questions(scene, rng)
    picked = rng.sample(qs, min(len(qs), rng.randint(2, 3)))
    turns = [(q["question"], q["answer"]) for q in picked]
    return [record(uid, path, turns, type="multi", types=[q["type"] for q in picked])]


def dialog(scene: Scene, rng: random.Random, uid: str, path: str) -> list[dict]:
    """Every question of `vqa_questions` about one image, in random order, as one conversation:
    one image encoding then serves every answer (LLaVA's instruction data is multi-turn likewise)."""
    qs = vqa_questions(scene, rng)
    rng.shuffle(qs)
    turns = [(q["question"], q["answer"]) for q in qs]
    return [record(uid, path, turns, type="multi", types=[q["type"] for q in qs])]


def box_text(box: tuple[float, ...]) -> str:
    return "[" + ", ".join(f"{v:.2f}" for v in box) + "]"


def ground(scene: Scene, rng: random.Random, uid: str, path: str) -> list[dict]:
    o = rng.choice(scene.objects)
    q = f"Give the bounding box of the {phrase(o)}."
    return [record(uid, path, [(q, box_text(o.box))], type="ground", box=list(o.box), object=phrase(o))]


@lru_cache(maxsize=1)
def popular_objects(n_scenes: int = 500) -> tuple[tuple[str, str], ...]:
    """All (colour, shape) pairs, most frequent first, counted over the first train scenes."""
    counts = Counter((o.colour, o.shape) for i in range(n_scenes) for o in generate_scene(i).objects)
    pairs = [(c, s) for c in COLOURS for s in SHAPES]
    return tuple(sorted(pairs, key=lambda p: -counts[p]))


def pope_negative(scene: Scene, rng: random.Random, category: str) -> tuple[str, str]:
    present = {(o.colour, o.shape) for o in scene.objects}
    if category == "random":
        return _absent_pair(scene, rng)
    if category == "popular":
        return next(p for p in popular_objects() if p not in present)
    o = rng.choice(scene.objects)  # adversarial: differs from a present object in colour or shape only
    near = [(c, o.shape) for c in COLOURS] + [(o.colour, s) for s in SHAPES]
    return rng.choice([p for p in near if p not in present])


def pope(scene: Scene, rng: random.Random, uid: str, path: str) -> list[dict]:
    """Per category one present and one absent probe, so yes/no is balanced exactly."""
    out = []
    for category in ("random", "popular", "adversarial"):
        yes = rng.choice(scene.objects)
        probes = [((yes.colour, yes.shape), "yes"), (pope_negative(scene, rng, category), "no")]
        for (colour, shape), answer in probes:
            q = f"Is there {article(colour)} {shape} in the image? Answer yes or no."
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


EXISTENCE_WORDINGS = (
    "Is there {obj}? Answer yes or no.",
    "Is there {obj} in the image? Answer yes or no.",
    "Does the image contain {obj}? Answer yes or no.",
    "Can you see {obj} in this picture? Answer yes or no.",
)


def object_probes(scene: Scene, rng: random.Random) -> list[dict]:
    """Object-existence questions, yes/no balanced: three objects of the scene and three absent ones that
    plausibly could be there (one sharing a colour or shape with a present object, as co-occurrence
    hallucinations do; two drawn by how often objects occur, so an object's name alone does not tell
    the answer), in varied wordings."""
    present = [(o.colour, o.shape) for o in rng.choices(scene.objects, k=3)]
    names = {(o.colour, o.shape) for o in scene.objects}
    prior = [(p, w) for p, w in zip(PAIRS, PAIR_WEIGHTS, strict=True) if p not in names]
    absent = [pope_negative(scene, rng, "adversarial")]
    absent += rng.choices([p for p, _ in prior], weights=[w for _, w in prior], k=2)
    pairs = [(p, "yes") for p in present] + [(p, "no") for p in absent]
    return [{"type": "existence", "question": rng.choice(EXISTENCE_WORDINGS).format(obj=article(f"{c} {s}")),
             "answer": answer, "object": (c, s)} for (c, s), answer in pairs]


def objects(scene: Scene, rng: random.Random, uid: str, path: str) -> list[dict]:
    return [record(f"{uid}_{k}", path, [(q["question"], q["answer"])], type="existence", answer=q["answer"])
            for k, q in enumerate(object_probes(scene, rng))]


TEACHER_HALLUCINATION_RATE = 0.4


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
            "prompt": "<image>\nHow many objects are there? Answer with a number.",
            "chosen": str(n),
            "rejected": str(wrong),
            "hallucination": {"kind": "count", "from": n, "to": wrong},
        },
    ]


Emitter = Callable[[Scene, random.Random, str, str], list[dict]]
EMITTERS: dict[str, Emitter] = {
    "caption": caption,
    "vqa": vqa,
    "instruct": instruct,
    "dialog": dialog,
    "ground": ground,
    "pope": pope,
    "objects": objects,
    "objects_noisy_teacher": objects_noisy_teacher,
    "pref": pref,
}
