"""The hallucination probes: ROC AUC, first-token margins that do not depend on batching, the yes/no AUC
and CHAIR eval tasks, the token probe."""

import random

import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from vlm.eval.generate import first_token_margins
from vlm.eval.metrics.auc import roc_auc
from vlm.eval.runner import EvalSettings, evaluate
from vlm.eval.task import Sample, get_task
from vlm.shapes.world import SyntheticWorld


def test_roc_auc_is_the_pairwise_win_rate_with_ties():
    rng = random.Random(0)
    pos = [rng.choice([0.0, 0.5, 1.0, 2.0]) for _ in range(30)]
    neg = [rng.choice([-1.0, 0.0, 0.5, 1.0]) for _ in range(40)]
    expected = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg) / (len(pos) * len(neg))
    assert roc_auc(pos, neg) == pytest.approx(expected)
    # by hand: positives (3, 1) vs negatives (2, 1): 3 beats both, 1 loses to 2 and ties 1: 2.5 of 4
    assert roc_auc([3.0, 1.0], [2.0, 1.0]) == pytest.approx(0.625)
    assert roc_auc([2.0], [1.0]) == 1.0 and roc_auc([1.0], [2.0]) == 0.0 and roc_auc([1.0], [1.0]) == 0.5


@pytest.fixture(scope="module")
def tiny(built_models):
    folder = built_models(template="llama3")
    return AutoModelForImageTextToText.from_pretrained(folder), AutoProcessor.from_pretrained(folder), folder


def _prompt(text, image):
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}], [image]


def test_margins_are_the_first_token_logits_whatever_the_batch(tiny):
    model, processor, _ = tiny
    world = SyntheticWorld("test", 64)
    prompts = [_prompt("Is there a red circle? Answer yes or no.", world.image(0)),
               _prompt("Is there a blue star in the image? Answer yes or no.", world.image(1)),
               _prompt("Yes?", world.image(2))]
    batched = first_token_margins(model, processor, prompts, "yes", "no", batch_size=3)
    single = [first_token_margins(model, processor, [p], "yes", "no")[0] for p in prompts]
    assert batched == pytest.approx(single, abs=1e-4)
    messages, images = prompts[1]
    inputs = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True,
                                           return_tensors="pt", processor_kwargs={"images": images})
    with torch.inference_mode():
        logits = model(**{k: v for k, v in inputs.items() if isinstance(v, torch.Tensor)}).logits[0, -1]
    yes, no = (processor.tokenizer.encode(w, add_special_tokens=False)[0] for w in ("yes", "no"))
    assert batched[1] == pytest.approx((logits[yes] - logits[no]).item(), abs=1e-4)
    assert len({round(m, 4) for m in batched}) == 3  # the margin depends on the prompt


def test_yes_no_auc_is_an_eval_task_per_split(tiny, tmp_path):
    _, _, folder = tiny
    result = evaluate(EvalSettings(str(folder), ["synthetic_pope_auc"], limit=36, out=str(tmp_path)))
    scores = result["results"]["synthetic_pope_auc"]
    assert set(scores["breakdown"]) == {"random", "popular", "adversarial"} and scores["n"] == 36
    aucs = [row["auc"] for row in scores["breakdown"].values()]
    assert all(0.0 <= v <= 1.0 for v in aucs) and scores["metrics"]["auc"] == pytest.approx(sum(aucs) / 3)
    assert scores["chance"]["auc"] == 0.5


def test_chair_counts_hallucinated_and_named_objects():
    task = get_task("synthetic_chair")
    samples = [Sample("0", "", [], ["red circle", "blue cross"]), Sample("1", "", [], ["green square"])]
    scores = task.score(samples, ["A red circle and a yellow cross.", "A green square, a green square."])
    # mentions: {red circle, yellow cross} and {green square}: 1 of 3 hallucinated, in 1 of 2 captions; 2 of 3 named
    assert scores.metrics == pytest.approx({"chair_i": 1 / 3, "chair_s": 0.5, "recall": 2 / 3, "mentions": 3})
    assert task.read(task.default_data())[0].question == "Describe the image briefly."


def test_presence_probe_reads_what_the_tokens_encode():
    from vlm.shapes.token_probe import fit_presence_probe

    g = torch.Generator().manual_seed(0)
    labels = (torch.rand(600, 12, generator=g) < 0.2).float()
    tokens = torch.randn(600, 5, 16, generator=g) * 0.5
    # one token per present object carries the object's code
    codes = torch.randn(12, 16, generator=g)
    for i, row in enumerate(labels):
        for k, j in enumerate(row.nonzero().flatten()[:5].tolist()):
            tokens[i, k] += codes[j]
    labels = torch.stack([torch.zeros(12).index_fill(0, r.nonzero().flatten()[:5], 1) for r in labels])
    encoded = fit_presence_probe(tokens[:400], labels[:400], tokens[400:], labels[400:], steps=150)
    noise = fit_presence_probe(torch.randn(600, 5, 16, generator=g)[:400], labels[:400],
                               torch.randn(200, 5, 16, generator=g), labels[400:], steps=150)
    assert encoded > 0.9 and 0.35 < noise < 0.65


def test_presence_probe_on_a_model_folder(tiny):
    from vlm.shapes.token_probe import presence_probe

    assert 0.0 <= presence_probe(tiny[2], n_train=16, n_test=8, image_size=64, steps=5) <= 1.0
