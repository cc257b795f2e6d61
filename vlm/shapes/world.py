"""The embedded default's world: deterministic, procedurally generated scenes of coloured shapes.

A scene is fully determined by ``(split, index)``. What is asked about a scene is a *task*: an
emitter in `vlm.shapes.tasks` (one module per task, registered in `EMITTERS`) that turns a scene
into LLaVA-format records.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from PIL import Image, ImageDraw

from vlm.data.example import Example
from vlm.data.sources import conversation_to_messages
from vlm.registry import Registry

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 160, 50),
    "blue": (30, 70, 220),
    "yellow": (235, 200, 0),
}
SHAPES = ("circle", "square", "triangle", "cross")
# side of an object's box as a fraction of the image side (tiny: ~4 px at 64 px, ~18 px at 256 px)
SIZES: dict[str, float] = {"tiny": 0.07, "small": 0.15, "large": 0.25}
MAX_OBJECTS = 3
BACKGROUND = (238, 238, 232)
SPLIT_OFFSETS: dict[str, int] = {"train": 0, "val": 1_000_000_000, "test": 2_000_000_000}
MAX_INDEX = 1_000_000_000
# skewed frequencies, so POPE's "popular" negatives (most frequent absent objects) mean something
PAIRS = [(c, s) for c in COLOURS for s in SHAPES]
PAIR_WEIGHTS = [
    (len(COLOURS) + 2 - i) * (len(SHAPES) + 2 - j) for i in range(len(COLOURS)) for j in range(len(SHAPES))
]


Emitter = Callable[["Scene", random.Random, str, str], list[dict]]
# task name -> emitter(scene, rng, uid, image_path) -> LLaVA-format records; one module per task
EMITTERS: Registry[Emitter] = Registry("shapes task", package="vlm.shapes.tasks")


@dataclass(frozen=True)
class Obj:
    colour: str
    shape: str
    size: str
    box: tuple[float, float, float, float]  # normalised x1, y1, x2, y2 (multiples of 0.01)

    @property
    def name(self) -> str:
        return f"{self.colour} {self.shape}"

    @property
    def centre(self) -> tuple[float, float]:
        return (self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2


@dataclass
class Scene:
    seed: int
    objects: list[Obj] = field(default_factory=list)

    def render(self, size: int) -> Image.Image:
        image = Image.new("RGB", (size, size), BACKGROUND)
        draw = ImageDraw.Draw(image)
        for obj in self.objects:
            _draw(draw, obj, size, COLOURS[obj.colour])
        return image

    def label_map(self, size: int) -> Image.Image:
        """Mode "L" image: 0 for background, else 1 + the index of the object's (colour, shape) in PAIRS."""
        image = Image.new("L", (size, size), 0)
        draw = ImageDraw.Draw(image)
        for obj in self.objects:
            _draw(draw, obj, size, 1 + PAIRS.index((obj.colour, obj.shape)))
        return image


def _unit_polygon(shape: str) -> list[tuple[float, float]]:
    """Vertices in the unit box [0, 1]^2."""
    if shape == "square":
        return [(0, 0), (1, 0), (1, 1), (0, 1)]
    if shape == "triangle":
        return [(0.5, 0), (1, 1), (0, 1)]
    if shape == "cross":
        a, b = 0.3, 0.7
        return [
            (a, 0),
            (b, 0),
            (b, a),
            (1, a),
            (1, b),
            (b, b),
            (b, 1),
            (a, 1),
            (a, b),
            (0, b),
            (0, a),
            (a, a),
        ]
    raise ValueError(f"no polygon for shape {shape!r}")


_POLYGONS = {s: _unit_polygon(s) for s in SHAPES if s != "circle"}


def _draw(draw: ImageDraw.ImageDraw, obj: Obj, size: int, fill: tuple[int, int, int] | int) -> None:
    x1, y1, x2, y2 = (v * size for v in obj.box)
    x2, y2 = x2 - 1, y2 - 1
    if obj.shape == "circle":
        draw.ellipse((x1, y1, x2, y2), fill=fill)
        return
    w, h = x2 - x1, y2 - y1
    draw.polygon([(x1 + u * w, y1 + v * h) for u, v in _POLYGONS[obj.shape]], fill=fill)


def _overlaps(a: tuple[float, ...], b: tuple[float, ...], gap: float = 0.02) -> bool:
    return not (a[2] + gap <= b[0] or b[2] + gap <= a[0] or a[3] + gap <= b[1] or b[3] + gap <= a[1])


def generate_scene(seed: int) -> Scene:
    """1-3 objects with distinct (colour, shape), non-overlapping boxes, at most one tiny object."""
    rng = random.Random(seed)
    objects: list[Obj] = []
    for _ in range(rng.randint(1, MAX_OBJECTS)):
        has_tiny = any(o.size == "tiny" for o in objects)
        size = "tiny" if not has_tiny and rng.random() < 0.25 else rng.choice(("small", "large"))
        colour, shape = _pick_pair(rng, {(o.colour, o.shape) for o in objects})
        side = round(SIZES[size] * 100)
        for _attempt in range(30):
            x, y = rng.randint(2, 98 - side), rng.randint(2, 98 - side)
            box = (x / 100, y / 100, (x + side) / 100, (y + side) / 100)
            if not any(_overlaps(box, o.box) for o in objects):
                objects.append(Obj(colour, shape, size, box))
                break
    return Scene(seed, objects)


def _pick_pair(rng: random.Random, used: set[tuple[str, str]]) -> tuple[str, str]:
    while True:
        pair = rng.choices(PAIRS, weights=PAIR_WEIGHTS)[0]
        if pair not in used:
            return pair


def scene_seed(split: str, index: int) -> int:
    if split not in SPLIT_OFFSETS:
        raise ValueError(f"unknown split {split!r}; known: {sorted(SPLIT_OFFSETS)}")
    if not 0 <= index < MAX_INDEX:
        raise ValueError(f"index {index} outside [0, {MAX_INDEX})")
    return SPLIT_OFFSETS[split] + index


class SyntheticWorld:
    """In-memory access: ``scene(i)``, ``image(i)`` and ``records(i, task)`` for one split."""

    def __init__(self, split: str = "train", size: int = 96):
        scene_seed(split, 0)
        self.split, self.size = split, size

    def scene(self, index: int) -> Scene:
        return generate_scene(scene_seed(self.split, index))

    def image(self, index: int) -> Image.Image:
        return self.scene(index).render(self.size)

    def image_path(self, index: int) -> str:
        return f"images/{self.split}_{index:07d}.png"

    def examples(self, index: int, task: str) -> list[Example]:
        """``records`` as chat-format ``Example``s with the rendered image (``pref`` has no conversations)."""
        if task == "pref":
            raise ValueError("preference pairs are not conversations; use records(i, 'pref')")
        image = self.image(index)
        out = []
        for rec in self.records(index, task):
            messages = conversation_to_messages(rec["conversations"], rec["id"])
            out.append(Example(rec["id"], messages, [image], source=f"synthetic/{task}"))
        return out

    def records(self, index: int, task: str) -> list[dict]:
        emit = EMITTERS.get(task)
        scene = self.scene(index)
        rng = random.Random(f"{task}:{scene.seed}")
        uid = f"{task}_{self.split}_{index:07d}"
        return emit(scene, rng, uid, self.image_path(index))
