"""The generation core of every evaluation: batched answers equal unbatched ones."""

import numpy as np
import pytest
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

from vlm.eval.generate import generate_answers


@pytest.fixture(scope="module")
def tiny(built_models):
    path = built_models("tiny-clip", "mlp2x_gelu", "tiny-llama")
    return AutoModelForImageTextToText.from_pretrained(path), AutoProcessor.from_pretrained(path)


def _prompts(n: int) -> list:
    """Prompts of varying lengths with 0-2 images of different sizes each."""
    rng = np.random.default_rng(1)
    out = []
    for k in range(n):
        n_images = (1, 2, 0, 1)[k % 4]
        images = [
            Image.fromarray(rng.integers(0, 255, (48 + 8 * k, 96 - 4 * k + 7 * j, 3), dtype=np.uint8))
            for j in range(n_images)
        ]
        text = "What is shown " + "here and there " * k + "?"
        content = [{"type": "image"}] * n_images + [{"type": "text", "text": text}]
        out.append(([{"role": "user", "content": content}], images))
    return out


def test_batched_generation_equals_unbatched(tiny):
    model, processor = tiny
    prompts = _prompts(12)
    padding_side = processor.tokenizer.padding_side
    single = generate_answers(model, processor, prompts, batch_size=1, max_new_tokens=6)
    batched = generate_answers(model, processor, prompts, batch_size=8, max_new_tokens=6)
    assert batched == single
    assert len(single) == 12 and all(isinstance(a, str) and a == a.strip() for a in single)
    assert processor.tokenizer.padding_side == padding_side  # restored after each call
    assert generate_answers(model, processor, [], batch_size=8) == []
