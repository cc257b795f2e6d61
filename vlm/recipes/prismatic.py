"""Prismatic VLMs (Karamcheti et al. 2024): fused DINOv2 + SigLIP, one stage with projector and LLM.

No align stage: projector and LLM train together, vision frozen.

    vlm train prismatic                 # embedded default: tiny DINOv2 + SigLIP, synthetic world
    vlm train prismatic --preset paper  # DINOv2-L/14 (registers) + SigLIP-so400m at 384 px, Llama-2-7B
"""

from vlm.build import BuildSpec
from vlm.recipes.base import RECIPES, RecipeEntry
from vlm.train.config import DataConfig, OptimConfig, Recipe, RunConfig, StageConfig

DEFAULT = Recipe(
    name="prismatic",
    model=BuildSpec(vision="tiny-dinov2+tiny-siglip", projector="mlp2x_gelu", llm="tiny-llama", template="llama3"),
    stages=[
        StageConfig(
            name="finetune",
            train={"vision": "frozen", "projector": "full", "llm": "full"},
            data=DataConfig(tasks=["caption", "vqa", "instruct"], n_images=2500, max_length=160),
            optim=OptimConfig(lr=5e-4),
            batch_size=16, group_by_length=False,
        ),
    ],
    run=RunConfig(output_dir="runs/prismatic"),
)

PAPER = Recipe(
    name="prismatic",
    model=BuildSpec(
        vision="facebook/dinov2-with-registers-large+google/siglip-so400m-patch14-384", projector="mlp2x_gelu",
        llm="meta-llama/Llama-2-7b-hf", template="vicuna_v1", image_size=384, aspect="resize", dtype="bfloat16",
    ),
    stages=[
        StageConfig(
            name="finetune",
            train={"vision": "frozen", "projector": "full", "llm": "full"},
            data=DataConfig(source="mixture", path="data/llava/llava15_finetune.yaml", max_length=2048),
            optim=OptimConfig(lr=2e-5, warmup_ratio=0.03, weight_decay=0.1),
            batch_size=16, epochs=2, save_every=500,  # 8 GPUs x 16 = global batch 128
        ),
    ],
    run=RunConfig(output_dir="runs/prismatic-7b", mixed_precision="bf16", gradient_checkpointing=True, eval_limit=0),
)

RECIPES.register("prismatic", RecipeEntry(DEFAULT, {"paper": PAPER}, __doc__))
