"""LLaVA-1.5: CLIP ViT + mlp2x_gelu; align (projector only) then instruct (projector + LLM).

    accelerate launch recipes/llava15.py                       # embedded default: tiny parts, synthetic world, CPU
    accelerate launch recipes/llava15.py --preset paper        # CLIP ViT-L/14-336 + Vicuna-7B on LLaVA's corpora
    accelerate launch recipes/llava15.py --preset paper-lora   # the LoRA variant
    ... --stages.instruct.optim.lr 1e-5 --run.output_dir runs/x   # any field can be overridden
"""

from vlm.build import BuildSpec
from vlm.train.config import DataConfig, OptimConfig, Recipe, RunConfig, StageConfig
from vlm.train.recipe import main

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

_PAPER_DATA = "data/llava"  # see data/README.md: python data/prepare_llava.py --root data/llava
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
            data=DataConfig(source="llava_json", path=f"{_PAPER_DATA}/blip_laion_cc_sbu_558k.json",
                            image_root=f"{_PAPER_DATA}/images", max_length=2048),
            optim=OptimConfig(lr=1e-3, warmup_ratio=0.03),
            batch_size=32, grad_accum=1, save_every=500,  # 8 GPUs x 32 = global batch 256
        ),
        StageConfig(
            name="instruct",
            train={"vision": "frozen", "projector": "full", "llm": "full"},
            data=DataConfig(source="llava_json", path=f"{_PAPER_DATA}/llava_v1_5_mix665k.json",
                            image_root=f"{_PAPER_DATA}/images", max_length=2048),
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

if __name__ == "__main__":
    main(DEFAULT, {"paper": PAPER, "paper-lora": PAPER_LORA})
