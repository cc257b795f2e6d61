"""encode_example: assistant-only labels for every chat template, image runs, the length limit."""

import jinja2
import pytest
import torch
from transformers import AutoProcessor

from vlm.data.errors import BadSample, BadSampleKind
from vlm.data.example import Example
from vlm.data.tokenize import IGNORE_INDEX, encode_example
from vlm.templates import CHAT_TEMPLATES, IMAGE_TOKEN

# The end-of-turn marker each template appends to an assistant reply (trained, like the reply).
END_OF_TURN = {"llama3": "<|eot_id|>", "chatml": "<|im_end|>", "vicuna_v1": "</s>", "plain": "\n"}
# Each template with the tiny LM whose tokenizer it belongs to (vicuna's </s> is plain text in both).
LLM = {"llama3": "tiny-llama", "chatml": "tiny-qwen2", "vicuna_v1": "tiny-llama", "plain": "tiny-llama"}


def text(s: str) -> dict:
    return {"type": "text", "text": s}


IMAGE = {"type": "image"}

CONVERSATIONS = {
    "multi_turn_multi_image": (
        [
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": [IMAGE, text("What colour is the circle?")]},
            {"role": "assistant", "content": [text("The circle is red.")]},
            {"role": "user", "content": [IMAGE, IMAGE, text("Which image shows more shapes?")]},
            {"role": "assistant", "content": "The second one, with three shapes."},
            {"role": "user", "content": "And how many in the first?"},
            {"role": "assistant", "content": "two"},
        ],
        3,
    ),
    "text_only": (
        [
            {"role": "user", "content": "Say something about shapes."},
            {"role": "assistant", "content": "A square has four sides."},
            {"role": "user", "content": [text("And a triangle?")]},
            {"role": "assistant", "content": "Three."},
        ],
        0,
    ),
    "one_image": (
        [
            {"role": "user", "content": [IMAGE, text("Describe the image.")]},
            {"role": "assistant", "content": "A small blue star above a large green square."},
        ],
        1,
    ),
}
CAPTION = [
    {"role": "user", "content": [IMAGE]},
    {"role": "assistant", "content": "A small blue star above a large green square."},
]


def processor_for(built_models, template: str):
    return AutoProcessor.from_pretrained(
        built_models("tiny-clip", "mlp2x_gelu", LLM[template], template=template)
    )


def _renders(processor, template: str) -> bool:
    try:
        processor.apply_chat_template(CAPTION, chat_template=template)
    except jinja2.TemplateSyntaxError:
        return False
    return True


def cases():
    for template in ("llama3", "chatml", "vicuna_v1"):
        for name in CONVERSATIONS:
            yield pytest.param(template, name, id=f"{template}-{name}")
    yield pytest.param("plain", "caption", id="plain-caption")


def conversation(name: str, images) -> Example:
    messages, n_images = (CAPTION, 1) if name == "caption" else CONVERSATIONS[name]
    return Example(id=name, messages=messages, images=images[:n_images])


def replies(example: Example) -> list[str]:
    def flat(content):
        return (
            content
            if isinstance(content, str)
            else "".join(i["text"] for i in content if i["type"] == "text")
        )

    return [flat(m["content"]) for m in example.messages if m["role"] == "assistant"]


def expected_mask(example: Example, processor, template: str, input_ids: torch.Tensor) -> list[bool]:
    """The label mask rebuilt without transformers' assistant-mask machinery.

    Render the conversation to text, expand each image marker, find every ``reply + end-of-turn``
    by string search in order, and give each token the character span its own decoding covers: a
    token is supervised iff it overlaps a reply span and is not an image placeholder.
    """
    rendered = processor.apply_chat_template(example.messages)
    rendered = rendered.replace(IMAGE_TOKEN, IMAGE_TOKEN * processor.image_seq_length)
    spans, cursor = [], 0
    for reply in replies(example):
        start = rendered.index(reply + END_OF_TURN[template], cursor)
        cursor = start + len(reply + END_OF_TURN[template])
        spans.append((start, cursor))
    pieces = [processor.tokenizer.decode([int(i)]) for i in input_ids]
    assert "".join(pieces) == rendered, "tokens do not decode back to the rendered conversation"
    mask, position = [], 0
    for token_id, piece in zip(input_ids.tolist(), pieces, strict=True):
        start, position = position, position + len(piece)
        overlaps = any(s < position and e > start for s, e in spans)
        mask.append(overlaps and token_id != processor.image_token_id)
    return mask


def supervised_runs(labels: torch.Tensor) -> list[list[int]]:
    runs, current = [], []
    for label in labels.tolist():
        if label != IGNORE_INDEX:
            current.append(label)
        elif current:
            runs.append(current)
            current = []
    return runs + ([current] if current else [])


@pytest.mark.parametrize(("template", "name"), list(cases()))
def test_labels_match_independent_reconstruction(built_models, images, template, name):
    processor = processor_for(built_models, template)
    example = conversation(name, images)
    out = encode_example(example, processor, max_length=4096)
    ids, labels = out["input_ids"], out["labels"]
    assert ids.dtype == labels.dtype == torch.long and ids.shape == labels.shape == (out["length"],)
    assert (labels != IGNORE_INDEX).tolist() == expected_mask(example, processor, template, ids)
    assert torch.equal(labels[labels != IGNORE_INDEX], ids[labels != IGNORE_INDEX])

    # Each supervised run decodes to one reply and its end-of-turn marker, in order. (vicuna's
    # "ASSISTANT: " space may share the reply's first token; the prompt then ends at "ASSISTANT:",
    # exactly as at generation time.)
    decoded = [processor.tokenizer.decode(run) for run in supervised_runs(labels)]
    if template == "vicuna_v1":
        decoded = [d.removeprefix(" ") for d in decoded]
    assert decoded == [r + END_OF_TURN[template] for r in replies(example)]

    n_images = len(example.images)
    assert out["num_images"] == n_images
    assert int((ids == processor.image_token_id).sum()) == n_images * processor.image_seq_length
    if n_images:
        assert out["pixel_values"].shape == (n_images, 3, 64, 64)
    else:
        assert out["pixel_values"] is None


@pytest.mark.parametrize(
    "template",
    [
        "llama3",
        "chatml",
        "vicuna_v1",
        "plain",
    ],
)
def test_registered_templates_render(built_models, template):
    processor = AutoProcessor.from_pretrained(built_models())
    assert _renders(processor, CHAT_TEMPLATES.get(template))


def image_runs(ids: torch.Tensor, image_token_id: int) -> list[int]:
    runs, n = [], 0
    for is_image in (ids == image_token_id).tolist() + [False]:
        if is_image:
            n += 1
        elif n:
            runs.append(n)
            n = 0
    return runs


@pytest.mark.parametrize("template", ["llama3", "chatml"])
def test_text_truncation_never_splits_image_runs(built_models, images, template):
    processor = processor_for(built_models, template)
    example = conversation("multi_turn_multi_image", images)
    full = encode_example(example, processor, max_length=4096)
    per_image = processor.image_seq_length
    first_image_end = int((full["input_ids"] == processor.image_token_id).nonzero()[per_image - 1]) + 1
    boundaries = {first_image_end, full["length"]} | {
        encode_example(Example("p", example.messages[:end], example.images[:n]), processor, 4096)["length"]
        for end, n in ((3, 1), (5, 3))
    }
    near_boundaries = {b + d for b in boundaries for d in (-1, 0, 1)}
    lengths_seen = set()
    for max_length in sorted(set(range(1, full["length"] + 3, 6)) | near_boundaries):
        try:
            out = encode_example(example, processor, max_length=max_length)
        except BadSample as error:
            assert error.kind is BadSampleKind.TOO_LONG and error.sample_id == example.id
            assert max_length <= first_image_end + 1 or "no assistant token" in error.detail
            continue
        ids, labels = out["input_ids"], out["labels"]
        lengths_seen.add(out["length"])
        assert out["length"] == len(ids) == len(labels) <= max_length
        assert image_runs(ids, processor.image_token_id) == [per_image] * out["num_images"]
        assert out["pixel_values"].shape[0] == out["num_images"] >= 1
        assert (labels != IGNORE_INDEX).any()
        assert torch.equal(ids, full["input_ids"][: len(ids)])  # always a prefix of the whole sample
    assert full["length"] in lengths_seen and len(lengths_seen) > 3


def test_truncation_drops_whole_trailing_turns_first(built_models, images):
    processor = processor_for(built_models, "llama3")
    example = conversation("multi_turn_multi_image", images)
    two_turns = Example("two", example.messages[:5], example.images)
    expected = encode_example(two_turns, processor, max_length=4096)
    full = encode_example(example, processor, max_length=4096)
    out = encode_example(example, processor, max_length=full["length"] - 1)
    assert torch.equal(out["input_ids"], expected["input_ids"])
    assert torch.equal(out["labels"], expected["labels"])
    assert processor.tokenizer.decode(supervised_runs(out["labels"])[-1]).endswith("<|eot_id|>")

    one_turn = Example("one", example.messages[:3], example.images[:1])
    expected = encode_example(one_turn, processor, max_length=4096)
    out = encode_example(example, processor, max_length=expected["length"])
    assert out["num_images"] == 1 and torch.equal(out["pixel_values"], expected["pixel_values"])
    assert torch.equal(out["input_ids"], expected["input_ids"])


def test_too_long(built_models, images):
    processor = processor_for(built_models, "llama3")
    example = conversation("one_image", images)
    length = encode_example(example, processor, max_length=4096)["length"]
    assert encode_example(example, processor, max_length=length, truncation="drop")["length"] == length
    with pytest.raises(BadSample) as error:
        encode_example(example, processor, max_length=length - 1, truncation="drop")
    assert error.value.kind is BadSampleKind.TOO_LONG
    with pytest.raises(BadSample, match="image tokens") as error:  # the image run alone does not fit
        encode_example(example, processor, max_length=processor.image_seq_length, truncation="text")
    assert error.value.kind is BadSampleKind.TOO_LONG
    with pytest.raises(BadSample, match="no assistant token") as error:  # only the prompt would fit
        encode_example(example, processor, max_length=length - 20, truncation="text")
    assert error.value.kind is BadSampleKind.TOO_LONG
    with pytest.raises(ValueError, match="truncation"):
        encode_example(example, processor, max_length=length, truncation="left")
