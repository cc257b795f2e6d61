"""LLaVA-1.5: CLIP ViT + mlp2x_gelu; align (projector only) then instruct (projector + LLM).

    vlm train llava15                       # embedded default: tiny parts, synthetic world, CPU
    vlm train llava15 --preset paper        # CLIP ViT-L/14-336 + Vicuna-7B on LLaVA's corpora
    vlm train llava15 --preset paper-lora   # the LoRA variant
    ... --stages.instruct.optim.lr 1e-5 --run.output_dir runs/x   # any field can be overridden
"""

from vlm.build import BuildSpec
from vlm.recipes.base import RECIPES, RecipeEntry
from vlm.train.config import DataConfig, OptimConfig, Recipe, RunConfig, StageConfig

DEFAULT = Recipe(
    name="llava15",
    model=BuildSpec(vision="tiny-clip", projector="mlp2x_gelu", llm="tiny-llama", template="llama3"),
    stages=[
        StageConfig(
            name="align",
            train={"vision": "frozen", "projector": "full", "llm": "frozen"},
            data=DataConfig(tasks=["caption"], n_images=1500, max_length=160),
            optim=OptimConfig(lr=1e-3),
            batch_size=16, group_by_length=False,
        ),
        StageConfig(
            name="instruct",
            train={"vision": "frozen", "projector": "full", "llm": "full"},
            data=DataConfig(tasks=["vqa", "instruct", "caption"], n_images=3000, max_length=160),
            optim=OptimConfig(lr=5e-4),
            batch_size=16, group_by_length=False,
        ),
    ],
    run=RunConfig(output_dir="runs/llava15"),
)

_DATA = "data/llava"  # the corpora, laid out as data/README.md shows; `vlm data prepare data/llava` writes the YAMLs
PAPER = Recipe(
    name="llava15",
    model=BuildSpec(
        vision="openai/clip-vit-large-patch14-336", projector="mlp2x_gelu", llm="lmsys/vicuna-7b-v1.5",
        template="vicuna_v1", image_size=336, dtype="bfloat16",
    ),
    stages=[
        StageConfig(
            name="align",
            train={"vision": "frozen", "projector": "full", "llm": "frozen"},
            data=DataConfig(source="mixture", path=f"{_DATA}/llava15_pretrain.yaml", max_length=2048),
            optim=OptimConfig(lr=1e-3, warmup_ratio=0.03),
            batch_size=32, grad_accum=1, save_every=500,  # 8 GPUs x 32 = global batch 256
        ),
        StageConfig(
            name="instruct",
            train={"vision": "frozen", "projector": "full", "llm": "full"},
            data=DataConfig(source="mixture", path=f"{_DATA}/llava15_finetune.yaml", max_length=2048),
            optim=OptimConfig(lr=2e-5, warmup_ratio=0.03),
            batch_size=16, grad_accum=1, save_every=500,  # 8 GPUs x 16 = global batch 128
        ),
    ],
    run=RunConfig(output_dir="runs/llava15-7b", mixed_precision="bf16", gradient_checkpointing=True, eval_limit=0),
)
PAPER_LORA = Recipe(
    name="llava15-lora",
    model=PAPER.model,
    stages=[
        PAPER.stages[0],
        StageConfig(
            name="instruct",
            train={"vision": "frozen", "projector": "full", "llm": "lora"},
            data=PAPER.stages[1].data,
            optim=OptimConfig(lr=2e-4, lr_projector=2e-5, warmup_ratio=0.03),
            batch_size=16, save_every=500,
        ),
    ],
    run=RunConfig(output_dir="runs/llava15-7b-lora", mixed_precision="bf16", gradient_checkpointing=True, eval_limit=0),
)

RECIPES.register("llava15", RecipeEntry(DEFAULT, {"paper": PAPER, "paper-lora": PAPER_LORA}, __doc__))
