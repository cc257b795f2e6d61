"""DPO stage numerics: SPEC's check value, trl's own DPO loss on the same batch, masking, references."""

from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch
from trl import DPOTrainer
from trl.trainer.utils import selective_log_softmax

from vlm.data.preference import PreferenceCollator, PreferenceDataset
from vlm.data.tokenize import IGNORE_INDEX
from vlm.modeling import VLMForConditionalGeneration
from vlm.shapes.dataset import SyntheticPreferences
from vlm.train.config import LoraConfig, StageConfig
from vlm.train.stages.dpo import DPOOptions, DPOStage, adapters_disabled, dpo_loss
from vlm.train.trainable import apply_train_modes


def test_spec_check_value():
    loss, chosen, rejected = dpo_loss(torch.tensor([-10.0]), torch.tensor([-12.0]), torch.tensor([-11.0]),
                                      torch.tensor([-11.0]), beta=0.1)
    assert loss.item() == pytest.approx(0.5981388694, abs=1e-9)
    assert chosen.item() == pytest.approx(0.1) and rejected.item() == pytest.approx(-0.1)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from vlm.build import BuildSpec, build

    out = tmp_path_factory.mktemp("dpo-model")
    model, processor = build(BuildSpec(vision="tiny-clip", projector="mlp2x_gelu", llm="tiny-llama"))
    model.save_pretrained(out)
    processor.save_pretrained(out)
    source = SyntheticPreferences(4, "pref", image_size=64)
    dataset = PreferenceDataset(source, processor, max_length=256)
    items = [dataset[i] for i in range(4)]
    return out, processor, source, items


def _models(folder, seed=0):
    policy = VLMForConditionalGeneration.from_pretrained(folder)
    reference = VLMForConditionalGeneration.from_pretrained(folder)
    torch.manual_seed(seed)
    with torch.no_grad():  # make policy and reference differ, so the log-ratios are not all zero
        for p in policy.language_model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return policy, reference.eval()


def _trl_completion_mask(processor, source, batch, n):
    """trl's way: everything after the prompt (rendered with the generation prompt) is the completion."""
    mask = torch.zeros_like(batch["input_ids"])
    for row in range(2 * n):
        record, images = source.get(row % n)
        prompt = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": record["prompt"][8:]}]}]
        ids = processor.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True, return_dict=True,
                                            processor_kwargs={"images": images})["input_ids"]
        start = len(ids[0]) if isinstance(ids[0], list) else len(ids)
        mask[row, start:] = batch["attention_mask"][row, start:]
    return mask


def _trl_loss(policy, reference, batch, completion_mask, beta, loss_types):
    def fused(model):
        def call(labels, fused_lm_head, use_cache=False, **inputs):
            logits = model(**inputs).logits[:, :-1]
            target = labels[:, 1:]
            logps = selective_log_softmax(logits, target.clamp(min=0)).masked_fill(target == -100, 0)
            zeros = torch.zeros_like(logps)
            return SimpleNamespace(log_probs=logps, entropy=zeros, mean_logits=zeros, is_top1=zeros.bool())
        return call

    n = batch["input_ids"].shape[0] // 2
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "pixel_values")}
    labels = batch["input_ids"].masked_fill(completion_mask == 0, -100)
    with torch.no_grad():
        ref = fused(reference)(labels=labels, fused_lm_head=True, **inputs).log_probs.sum(1)
    accel = SimpleNamespace(device=torch.device("cpu"), gather=lambda x: x, gather_for_metrics=lambda x: x)
    trainer = SimpleNamespace(
        model=SimpleNamespace(training=True), accelerator=accel, aux_loss_enabled=False, ld_alpha=None,
        precompute_ref_logps=True, f_divergence_type="reverse_kl", loss_types=loss_types,
        loss_weights=[1.0] * len(loss_types), beta=beta, use_weighting=False, label_smoothing=0.0,
        _metrics=defaultdict(lambda: defaultdict(list)), _total_train_tokens=0, _tp_size=1,
    )
    trl_inputs = {**inputs, "completion_mask": completion_mask, "ref_chosen_logps": ref[:n], "ref_rejected_logps": ref[n:]}
    return DPOTrainer._compute_loss(trainer, fused(policy), trl_inputs, False), trainer._metrics["train"]


def _stage(**dpo):
    return DPOStage(StageConfig(name="dpo", kind="dpo", options=DPOOptions(**dpo)))


def test_loss_equals_trl_and_masks_prompt_image_padding(setup):
    folder, processor, source, items = setup
    batch = PreferenceCollator(processor.tokenizer.pad_token_id)(items)
    n = batch["pairs"]
    completion = _trl_completion_mask(processor, source, batch, n)
    # our labels cover exactly trl's completion tokens: no prompt, image or padding position
    assert torch.equal(batch["labels"] != IGNORE_INDEX, completion.bool())
    assert not (batch["labels"] == processor.image_token_id).any()
    policy, reference = _models(folder)
    stage = _stage(beta=0.1)
    stage.reference = reference
    ours = stage.loss(policy, batch, torch.tensor(float(n)))
    theirs, metrics = _trl_loss(policy, reference, batch, completion, 0.1, ["sigmoid"])
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-5, abs=1e-6)
    assert ours.item() != pytest.approx(0.6931, abs=1e-3)  # not the trivial log 2 of policy == reference
    logged = {k: s / c for k, (s, c) in stage.take_metrics().items()}
    assert logged["rewards/margin"] == pytest.approx(metrics["rewards/margins"][0], rel=1e-4, abs=1e-6)
    assert logged["rewards/accuracy"] == pytest.approx(metrics["rewards/accuracies"][0])
    ours.backward()
    assert policy.language_model.lm_head.weight.grad.abs().sum() > 0


def test_sft_term_equals_trl_sigmoid_plus_sft(setup):
    folder, processor, source, items = setup
    count = [it for it in items if it["id"].endswith("_count")]  # equal-length answers: token mean == pair mean
    assert len(count) == 2
    batch = PreferenceCollator(processor.tokenizer.pad_token_id)(count)
    sub = SimpleNamespace(get=lambda i: source.get(2 * i + 1))
    completion = _trl_completion_mask(processor, sub, batch, 2)
    policy, reference = _models(folder, seed=1)
    stage = _stage(beta=0.5, sft_weight=1.0)
    stage.reference = reference
    ours = stage.loss(policy, batch, torch.tensor(2.0))
    theirs, _ = _trl_loss(policy, reference, batch, completion, 0.5, ["sigmoid", "sft"])
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-5)


def test_adapter_reference_is_the_policy_without_lora(setup):
    folder, processor, _, items = setup
    policy = VLMForConditionalGeneration.from_pretrained(folder)
    plain = VLMForConditionalGeneration.from_pretrained(folder).eval()
    apply_train_modes(policy, {"vision": "frozen", "projector": "frozen", "llm": "lora"}, LoraConfig(r=4, alpha=8, dropout=0.0))
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.normal_()
    batch = PreferenceCollator(processor.tokenizer.pad_token_id)(items[:2])
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "pixel_values")}
    policy.eval()
    with torch.no_grad():
        with_lora = policy(**inputs).logits
        with adapters_disabled(policy):
            without = policy(**inputs).logits
        base = plain(**inputs).logits
    assert torch.allclose(without, base, atol=1e-5) and not torch.allclose(with_lora, base, atol=1e-3)
    assert torch.equal(policy(**inputs).logits, with_lora)  # adapters are back on afterwards
    stage = DPOStage(StageConfig(name="d", kind="dpo", train={"llm": "lora"}, options=DPOOptions(reference="adapter")))
    assert stage._reference_logits(policy, inputs).allclose(base, atol=1e-5)
    with pytest.raises(ValueError, match="reference=copy"):
        DPOStage(StageConfig(name="d", kind="dpo", train={"llm": "full"}, options=DPOOptions(reference="adapter")))
