"""The tiny LMs' tokenizer: a byte-level BPE trained with `tokenizers` on shapes-world phrasing."""

from __future__ import annotations

import functools
import random
from collections.abc import Iterator

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

SEED = 0
VOCAB_SIZE = 1536

COLOURS = "red green blue yellow purple orange white black gray pink brown cyan".split()
SHAPES = "circle square triangle star diamond hexagon cross ellipse oval".split()
SIZES = "small large tiny big medium".split()
RELATIONS = ["to the left of", "to the right of", "above", "below", "next to"]
DIRECTIONS = ["left", "right", "above", "below"]
NUMBER_WORDS = "zero one two three four five six seven eight nine ten".split()
PLACES = ["top left", "top right", "bottom left", "bottom right", "center", "middle", "top", "bottom"]
FILLER = (
    "the a an is are was were be been being it its this that these those there here and or but not no "
    "yes of in on at to from with by for as into onto over under between near far than then so if "
    "what which who whom whose where when why how many much some any all each every both either "
    "neither only also very just more most less least other another same different such own "
    "i you he she we they me him her us them my your his our their mine yours can could do does did "
    "has have had will would should must may might shall please thank thanks sure okay sorry "
    "answer question image picture photo scene shape shapes object objects colour colours color "
    "colors size sizes position positions count number numbers box boxes bounding coordinates corner "
    "corners edge edges background foreground side sides half part whole row column line grid "
    "describe show see look find tell give point list name say write read think know want need "
    "make take use get go come put keep move turn place draw paint fill sort compare check choose "
    "left right above below beside behind inside outside around across along near middle centre "
    "first second third last next previous one two three four five six seven eight nine ten "
    "big bigger biggest small smaller smallest large larger largest tall short wide narrow long "
    "bright dark light pale deep plain solid empty full round sharp straight curved flat "
    "up down out off again still even already always never often sometimes usually maybe "
    "because while after before until since about against during without within through "
    "good new old great high low early late young important able certain clear whole true false "
    "time year day way thing man woman child world life hand eye place work week case group "
    "problem fact area system program point home water room mother story word business side "
    "user assistant system model answer reply response caption description example task "
    "correct incorrect wrong right exactly approximately about total altogether together only"
).split()


def _plural(shape: str) -> str:
    return shape + ("es" if shape.endswith(("s", "x")) else "s")


def _box(rng: random.Random) -> str:
    x0, y0 = rng.randint(0, 60) / 100, rng.randint(0, 60) / 100
    x1, y1 = x0 + rng.randint(10, 40) / 100, y0 + rng.randint(10, 40) / 100
    return "[" + ", ".join(f"{v:.2f}" for v in (x0, y0, x1, y1)) + "]"


def _sentences(rng: random.Random) -> Iterator[str]:
    """One round of shapes-world phrasing: questions, answers, captions and grounding."""
    colour, other = rng.sample(COLOURS, 2)
    shape, other_shape = rng.sample(SHAPES, 2)
    size, relation, place = rng.choice(SIZES), rng.choice(RELATIONS), rng.choice(PLACES)
    n = rng.randint(0, 10)
    count = rng.choice([str(n), NUMBER_WORDS[n]])
    thing, other_thing = f"{size} {colour} {shape}", f"{other} {other_shape}"
    yield f"What colour is the {shape}? The {shape} is {colour}."
    yield f"What color is the {size} {shape}? It is {colour}."
    yield f"What shape is the {colour} object? It is a {shape}."
    yield f"How many {_plural(shape)} are there? There are {count} {_plural(shape)}."
    yield f"How many shapes are in the image? {n}. There are {NUMBER_WORDS[n]} shapes."
    yield f"Is there a {colour} {shape}? {rng.choice(['Yes', 'No'])}, there {rng.choice(['is', 'is not'])}."
    yield f"Is the {thing} {relation} the {other_thing}? {rng.choice(['yes', 'no'])}"
    yield f"Where is the {thing}? It is in the {place} of the image, {relation} the {other_thing}."
    yield f"Describe the image. There are {NUMBER_WORDS[n]} shapes: a {thing} and a {other_thing}."
    yield f"Describe the image in one sentence. A {thing} {relation} a {other_thing}."
    yield f"The {thing} is {relation} the {other_thing}, and it is {rng.choice(['smaller', 'larger', 'bigger'])} than the {other_shape}."
    yield f"Give the bounding box of the {colour} {shape}. {_box(rng)}"
    yield f"The {other_thing} is at {_box(rng)} and the {shape} is at {_box(rng)}."
    yield f"Which shape is at {_box(rng)}? The {thing}."
    yield f"Count the {colour} shapes. {count}"
    yield " ".join(rng.choices(FILLER, k=12)) + "."
    # one-word replies start a turn with no leading space: real tokenizers hold those forms whole too
    yield from (colour, shape, size, count, rng.choice(["yes", "no", "Yes", "No"]), rng.choice(DIRECTIONS))
    yield "Answer with one word. Answer yes or no. Answer with a number. Answer left, right, above or below."


def corpus(rounds: int = 400, seed: int = SEED) -> list[str]:
    rng = random.Random(seed)
    lines = [
        "user",
        "assistant",
        "system",
        " ".join(NUMBER_WORDS),
        " ".join(str(i) for i in range(11)),
        " ".join(FILLER),
    ]
    for _ in range(rounds):
        lines.extend(_sentences(rng))
    return lines


# transformers rebuilds a qwen2 tokenizer from vocab and merges with this split (and NFC); training and
# saving with the same pipeline keeps the two LMs' tokenizers identical before and after loading.
SPLIT_REGEX = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""


@functools.cache
def _base_tokenizer_json() -> str:
    """A byte-level BPE trained on ``corpus()``, without special tokens, as JSON."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(SPLIT_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tokenizer.train_from_iterator(corpus(), trainer=trainer)
    return tokenizer.to_str()


def tiny_tokenizer(special: dict[str, str], extra: list[str], chat_template: str) -> PreTrainedTokenizerFast:
    """The shared BPE with ``special`` (``{"eos_token": ...}``) and ``extra`` special tokens appended."""
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_base_tokenizer_json()),
        **special,
        extra_special_tokens=extra,
        clean_up_tokenization_spaces=False,
        model_max_length=4096,
    )
    tokenizer.chat_template = chat_template
    return tokenizer
