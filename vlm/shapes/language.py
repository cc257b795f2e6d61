"""How the shapes world is put into words: object phrases, relations, captions, LLaVA-format records."""

from __future__ import annotations

from vlm.shapes.world import Obj, Scene

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


def box_text(box: tuple[float, ...]) -> str:
    return "[" + ", ".join(f"{v:.2f}" for v in box) + "]"
