"""The papers' models at their true shapes, on the meta device: published parameter counts, tokens per
image, trainable parameters per stage and the memory plan (`vlm plan`), next to DeepSpeed's estimators."""

import copy

import pytest
import torch
from transformers import (
    AutoModel,
    AutoModelForCausalLM,
    AutoTokenizer,
    LlavaNextImageProcessor,
    LlavaNextProcessor,
)

from vlm.build import BuildSpec, build_on_meta
from vlm.hub import resolve_part
from vlm.published.base import published, stand_in
from vlm.recipes.base import RECIPES
from vlm.train.activations import measure_activations
from vlm.train.config import Recipe, RunConfig, StageConfig
from vlm.train.plan import ENGINES, GiB, Hardware, format_plan, plan_recipe

# the authors' figures (SPEC "Real-size shapes"), not the catalogue's, so the test is not circular
PUBLISHED = {
    "shape-clip-vit-large-patch14-336": 304e6,
    "shape-clip-vit-large-patch14": 304e6,
    "shape-siglip-so400m-patch14-384": 428e6,  # SoViT-400m/14; "so400m" rounds it
    "shape-dinov2-large": 304e6,
    "shape-dinov2-with-registers-large": 304e6,
    "shape-convnext-large": 198e6,  # before ConvLLaVA's stage 5 (the paper's count includes a 1.5M classifier)
    "shape-vicuna-7b-v1.5": 6.74e9,
    "shape-llama-2-7b": 6.74e9,
    "shape-vicuna-13b-v1.5": 13.0e9,
    "shape-llama-3-8b": 8.03e9,
    "shape-qwen2-0.5b": 0.49e9,
    "shape-qwen2-7b": 7.6e9,
}
HW = Hardware(gpus=8, gpu_memory=80)


@pytest.fixture(scope="module")
def llava_plan():
    return plan_recipe(RECIPES.get("llava15").preset("paper"), HW)


def _meta(part):
    entry = published()[part]
    with torch.device("meta"):
        return (AutoModelForCausalLM if entry.kind == "llm" else AutoModel).from_config(entry.config())


@pytest.mark.parametrize("part", sorted(PUBLISHED))
def test_published_parameter_counts_within_one_percent(part):
    n = sum(p.numel() for p in _meta(part).parameters())
    assert abs(n / PUBLISHED[part] - 1) < 0.01, f"{part}: {n:,} vs {PUBLISHED[part]:,.0f}"


def test_every_shape_is_a_config_only_named_part():
    assert set(PUBLISHED) == set(published())
    folder = resolve_part("shape-clip-vit-large-patch14-336")
    assert (folder / "config.json").is_file() and (folder / "preprocessor_config.json").is_file()
    assert not list(folder.glob("*.safetensors"))
    assert stand_in("openai/clip-vit-large-patch14-336") == "shape-clip-vit-large-patch14-336"
    assert stand_in("open_clip:hf-hub:laion/CLIP-convnext_large_d_320.laion2B-s29B-b131K-ft-soup") == "shape-convnext-large"
    assert stand_in("someone/unknown") is None


def test_timm_builds_the_same_convnext_large_trunk():
    timm = pytest.importorskip("timm")
    with torch.device("meta"):
        trunk = timm.create_model("convnext_large", pretrained=False, num_classes=0)
    assert sum(p.numel() for p in trunk.parameters()) == sum(p.numel() for p in _meta("shape-convnext-large").parameters())


def test_llava15_7b_parts_total_and_tokens(llava_plan):
    parts = {p.name: p for p in llava_plan.parts}
    assert parts["vision"].resolved == "shape-clip-vit-large-patch14-336"
    assert parts["llm"].resolved == "shape-vicuna-7b-v1.5"
    assert abs(parts["projector"].parameters / 21e6 - 1) < 0.01  # 1024 -> 4096 -> 4096
    assert abs(llava_plan.total / 7.06e9 - 1) < 0.01
    assert llava_plan.projector == "mlp2x_gelu 1024 -> 4096"
    assert llava_plan.tokens == [("336 px", 576)]


def test_trainable_parameters_per_stage_follow_the_train_modes(llava_plan):
    align, instruct = llava_plan.stages
    assert align.trainable == {"vision": 0, "projector": parts_of(llava_plan)["projector"], "llm": 0}
    assert instruct.trainable["llm"] == parts_of(llava_plan)["llm"] and instruct.trainable["vision"] == 0
    recipe = copy.deepcopy(RECIPES.get("llava15").preset("paper-lora"))
    recipe.stages = recipe.stages[1:]  # instruct
    lora = plan_recipe(recipe, HW).stages[0]
    h, i, r, layers = 4096, 11008, 128, 32  # adapters (in + out) x r on q, k, v, o, gate, up, down of every layer
    assert lora.trainable["llm"] == layers * r * (4 * (h + h) + 2 * (h + i) + (i + h))
    assert lora.trainable["projector"] == parts_of(llava_plan)["projector"]


def parts_of(plan):
    return {p.name: p.parameters for p in plan.parts}


def test_memory_rows_and_deepspeed_beside(llava_plan):
    instruct = llava_plan.stages[1]
    rows = {(r.engine, r.checkpointing): r for r in instruct.rows}
    assert set(rows) == {(e, c) for e in ENGINES for c in (False, True)}
    n, total = HW.world, llava_plan.total
    trained = sum(instruct.trainable.values())
    ddp, zero2, zero3 = rows["DDP", True], rows["ZeRO-2", True], rows["ZeRO-3", True]
    assert ddp.weights == 2 * total and ddp.gradients == 2 * trained and ddp.optimizer == 12 * trained
    assert zero2.weights == 2 * total and zero2.optimizer == 12 * trained / n
    assert zero3.weights == 2 * total / n and zero3.live > 0
    assert ddp.total / GiB > 80 and zero3.total / GiB < 0.9 * 80  # 7B full fine-tuning: ZeRO-3 fits, DDP does not
    assert rows["ZeRO-3", False].activations > 5 * zero3.activations  # checkpointing keeps layer inputs only
    ours, theirs = {e: (o, t) for e, o, t in llava_plan.all_trainable}["ZeRO-2"]
    assert theirs - ours == pytest.approx(4 * total / n, rel=1e-6)  # DeepSpeed adds an fp32 gradient copy
    assert "estimate_zero3_model_states_mem_needs_all_cold" in llava_plan.deepspeed_printout
    assert "7062M total params" in llava_plan.deepspeed_printout
    text = format_plan(llava_plan)
    assert "ZeRO-3 + CPU offload" in text and "NO" in text and "fits 72 GiB" in text


def test_convllava_tokens_at_its_resolutions():
    recipe = copy.deepcopy(RECIPES.get("llava_convnext").preset("paper"))
    recipe.stages = recipe.stages[:1]  # tokens and parts do not depend on the stages
    plan = plan_recipe(recipe, HW, [768, 1024, 1536])
    assert plan.tokens == [("768 px", 144), ("1024 px", 256), ("1536 px", 576)]
    assert plan.projector == "mlp2x_gelu 3072 -> 4096"  # the fifth stage's width
    vision = next(p for p in plan.parts if p.name == "vision")
    assert vision.resolved == "shape-convnext-large" and abs(vision.published / 198e6 - 1) < 0.01


def test_s2_keeps_576_tokens_with_three_times_the_channels():
    model = build_on_meta(BuildSpec(vision="shape-clip-vit-large-patch14-336", llm="shape-vicuna-7b-v1.5",
                                    s2_scales=[336, 672, 1008]))
    assert model.config.image_seq_length == 576
    first = next(m for m in model.projector.modules() if isinstance(m, torch.nn.Linear))
    assert first.in_features == 3 * 1024


def test_anyres_token_counts_equal_llava_next_processor():
    sizes = [(336, 336), (480, 640), (1000, 300), (672, 1344)]
    plan = plan_recipe(Recipe("anyres", BuildSpec(vision="openai/clip-vit-large-patch14-336", llm="lmsys/vicuna-7b-v1.5",
                                                  high_res="anyres"), stages=[]), HW, sizes)
    model = build_on_meta(BuildSpec(vision="shape-clip-vit-large-patch14-336", llm="shape-vicuna-7b-v1.5",
                                    high_res="anyres"))
    pinpoints = model.config.image_grid_pinpoints
    hf = LlavaNextProcessor(
        image_processor=LlavaNextImageProcessor(image_grid_pinpoints=pinpoints, size={"shortest_edge": 336},
                                                crop_size={"height": 336, "width": 336}),
        tokenizer=AutoTokenizer.from_pretrained(resolve_part("tiny-llama")), patch_size=14, vision_feature_select_strategy="default", num_additional_image_tokens=1,
    )
    for (label, tokens), size in zip(plan.tokens, sizes, strict=True):
        assert tokens == hf._get_number_of_features(*size, 336, 336) - 1, label  # HF's "default" drops CLS after


def test_activations_are_measured_from_what_autograd_keeps():
    spec = BuildSpec(vision="shape-clip-vit-large-patch14-336", llm="shape-qwen2-0.5b", dtype="bfloat16")
    model = build_on_meta(spec)
    model.requires_grad_(False)
    assert measure_activations(model, 1, 1024, eager=False).total == 0  # nothing trains: nothing is kept
    model.projector.requires_grad_(True)
    fused, eager = (measure_activations(model, 1, 1024, eager=e) for e in (False, True))
    heads, layers = 14, 24  # eager keeps each layer's score and probability matrices (bf16, s x s per head)
    assert eager.total - fused.total >= layers * heads * 1024 * 1024 * 2 * 2
    assert fused.checkpointed() < fused.total


def test_a_stage_that_does_not_train_the_vlm_is_not_planned():
    recipe = Recipe("x", BuildSpec(vision="shape-clip-vit-large-patch14-336", llm="shape-qwen2-0.5b"),
                    stages=[StageConfig(name="locality", kind="maskembed", train={"vision": "full"})], run=RunConfig())
    stage = plan_recipe(recipe, HW).stages[0]
    assert not stage.rows and "not planned" in stage.note


def test_vlm_plan_command(capsys):
    from vlm.cli import main

    assert main(["plan", "prismatic", "--preset", "paper", "--gpus", "4", "--gpu-memory", "40"]) == 0
    out = capsys.readouterr().out
    assert "4 GPU(s) of 40 GiB" in out and "384 px -> 729" in out
    assert "facebook/dinov2-with-registers-large+google/siglip-so400m-patch14-384 -> shape-dinov2-with-registers-large" in out
    assert "DeepSpeed's estimators, as they print" in out and "4 GPUs per node" in out
