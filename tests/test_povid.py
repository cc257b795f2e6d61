"""POVID: noise schedule, hallucination injection (rules and the chat-LLM rewriter), the noisy-own term."""

import pytest
import torch

from vlm.data.povid import (
    ChatLLMRewriter,
    add_diffusion_noise,
    noise_coefficients,
    noisy_pixel_values,
    sigmoid_betas,
)
from vlm.data.preference import PreferenceCollator, PreferenceDataset
from vlm.data.tokenize import IGNORE_INDEX
from vlm.modeling import VLMForConditionalGeneration
from vlm.shapes.dataset import SyntheticPreferences
from vlm.shapes.language import caption_text
from vlm.shapes.povid import RuleRewriter, povid_records
from vlm.shapes.world import COLOURS, SyntheticWorld
from vlm.train.config import StageConfig
from vlm.train.stages.dpo import DPOOptions, DPOStage


def test_sigmoid_schedule_and_step_500():
    betas = sigmoid_betas()
    assert betas.shape == (1000,) and torch.all(betas[1:] > betas[:-1])
    assert betas[0].item() == pytest.approx(1e-5 + 4.99e-3 * torch.sigmoid(torch.tensor(-6.0)).item(), rel=1e-6)
    a, b = noise_coefficients(500)
    assert (round(a, 3), round(b, 3)) == (0.863, 0.505)
    assert a * a + b * b == pytest.approx(1.0)
    x = torch.full((1, 3, 8, 8), 0.5)
    g = torch.Generator().manual_seed(0)
    eps = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(add_diffusion_noise(x, 500, g), a * x + b * eps)
    with pytest.raises(ValueError):
        noise_coefficients(1000)


def test_noise_is_on_unit_pixels_and_renormalised():
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]
    pixels = torch.rand(2, 3, 4, 4)
    normalised = (pixels - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    noisy = noisy_pixel_values(normalised, mean, std, 500, torch.Generator().manual_seed(3))
    expected = add_diffusion_noise(pixels, 500, torch.Generator().manual_seed(3))
    back = noisy * torch.tensor(std).view(1, 3, 1, 1) + torch.tensor(mean).view(1, 3, 1, 1)
    assert torch.allclose(back, expected, atol=1e-6)


def test_rule_rewriter_injects_each_kind_of_hallucination():
    world = SyntheticWorld("train", 64)
    rewriter = RuleRewriter(seed=0)
    kinds = set()
    for i in range(30):
        scene = world.scene(i)
        for rec in povid_records(world, i, rewriter):
            kinds.add(rec["type"])
            assert rec["rejected"] != rec["chosen"] and rec["prompt"].startswith("<image>\n")
            if rec["type"] == "existence":
                assert {rec["chosen"], rec["rejected"]} == {"yes", "no"}
            if rec["type"] == "count":
                assert abs(int(rec["rejected"]) - int(rec["chosen"])) == 1
            if rec["type"] == "colour":
                assert rec["rejected"] in COLOURS
            if rec["type"] == "caption":
                assert rec["chosen"] == caption_text(scene)
    assert kinds == {"caption", "colour", "shape", "count", "existence", "spatial", "small"}
    again = povid_records(world, 3, RuleRewriter(seed=0))
    assert again == povid_records(world, 3, rewriter)  # deterministic


class _EchoLM:
    """A chat 'LLM' that answers with fixed text: checks prompting and decoding of the rewriter."""

    def __init__(self, tokenizer, reply):
        self.tokenizer, self.reply, self.prompts = tokenizer, reply, []

    def generate(self, input_ids, attention_mask, **kw):
        self.prompts.append(self.tokenizer.decode(input_ids[0]))
        new = torch.tensor([self.tokenizer.encode(self.reply, add_special_tokens=False)])
        return torch.cat([input_ids, new], 1)


def test_chat_llm_rewriter_prompts_with_question_and_answer():
    from transformers import AutoTokenizer

    from vlm.tiny.backbone import tiny_path

    tokenizer = AutoTokenizer.from_pretrained(tiny_path("tiny-llama"))
    lm = _EchoLM(tokenizer, "a blue square")
    rewriter = ChatLLMRewriter(lm, tokenizer)
    assert rewriter("What is it?", "a red circle", {}) == "a blue square"
    assert "What is it?" in lm.prompts[0] and "a red circle" in lm.prompts[0] and "hallucinations" in lm.prompts[0]
    assert ChatLLMRewriter(_EchoLM(tokenizer, "a red circle"), tokenizer)("Q", "a red circle", {}) is None


def test_noisy_own_term(built_models):
    folder = built_models()
    from vlm.processing import VLMProcessor

    processor = VLMProcessor.from_pretrained(folder)
    source = SyntheticPreferences(2, "povid", image_size=64)
    dataset = PreferenceDataset(source, processor, max_length=256, noise_step=500, seed=7)
    items = [dataset[i] for i in range(3)]
    assert torch.equal(items[0]["noisy_pixel_values"], dataset[0]["noisy_pixel_values"])  # seeded per sample
    assert not torch.allclose(items[0]["noisy_pixel_values"], items[0]["pixel_values"], atol=0.1)
    batch = PreferenceCollator(processor.tokenizer.pad_token_id)(items)
    model = VLMForConditionalGeneration.from_pretrained(folder)
    stage = DPOStage(StageConfig(name="p", kind="dpo", options=DPOOptions(text_weight=0.5, noise_weight=0.5)))
    stage.reference = VLMForConditionalGeneration.from_pretrained(folder).eval()
    own = stage.noisy_own_labels(model, batch)
    n, labels = batch["pairs"], batch["labels"][:3]
    assert torch.equal(own == IGNORE_INDEX, labels == IGNORE_INDEX)  # same answer positions as the chosen answer
    with torch.no_grad():
        noisy = model(input_ids=batch["input_ids"][:n], attention_mask=batch["attention_mask"][:n],
                      pixel_values=batch["noisy_pixel_values"]).logits
    answer = labels[:, 1:] != IGNORE_INDEX
    assert torch.equal(own[:, 1:][answer], noisy[:, :-1].argmax(-1)[answer])
    loss = stage.loss(model, batch, torch.tensor(3.0))
    # policy == reference: every DPO term is log 2
    assert loss.item() == pytest.approx(torch.log(torch.tensor(2.0)).item(), abs=1e-5)
    metrics = stage.take_metrics()
    assert set(metrics) == {f"{p}/{k}" for p in ("rewards", "noise_rewards") for k in ("chosen", "rejected", "margin", "accuracy")}
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.language_model.parameters())


def test_povid_objects_keeps_only_existence_pairs_balanced():
    full = SyntheticPreferences(20, "povid", image_size=64)
    objects = SyntheticPreferences(20, "povid_objects", image_size=64)
    assert [r for _, r in objects.records] == [r for _, r in full.records if r["type"] == "existence"]
    assert len(objects) == 7 * 20  # per scene the six `objects` questions and the VQA existence one
    chosen = [r["chosen"] for _, r in objects.records]
    assert 0.4 < chosen.count("yes") / len(chosen) < 0.6
    assert all({r["chosen"], r["rejected"]} == {"yes", "no"} for _, r in objects.records)
    with pytest.raises(ValueError, match="povid_objects"):
        SyntheticPreferences(2, "objects")


def test_first_image_selects_a_later_block_of_scenes():
    """`data.first_image` lets a stage read scenes no earlier stage saw (preference data on new images)."""
    from vlm.shapes.dataset import SyntheticDataset

    early, later = SyntheticPreferences(3, "povid", image_size=64), SyntheticPreferences(3, "povid", image_size=64, first=5)
    assert {i for i, _ in early.records} == {0, 1, 2} and {i for i, _ in later.records} == {5, 6, 7}
    assert [r for i, r in SyntheticPreferences(8, "povid", image_size=64).records if i >= 5] == [r for _, r in later.records]
    sft = SyntheticDataset(2, ["objects"], image_size=64, first=5)
    assert [e.id for e in sft] == [r["id"] for i in (5, 6) for r in SyntheticWorld("train", 64).records(i, "objects")]
