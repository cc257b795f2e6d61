"""ConvLLaVA: a hierarchical ConvNeXt encoder with an added fifth stage (stride 64), three stages.

    vlm train llava_convnext                  # embedded default: tiny parts, synthetic world, CPU
    vlm train llava_convnext --preset paper   # ConvNeXt-L CLIP (laion2b) + Vicuna-7B at 768 px

Stages (ConvLLaVA, Ge et al. 2024): (1) LLM frozen, the new fifth stage + projector learn;
(2) ConvNeXt from its third stage on, projector and LLM learn on a larger corpus;
(3) instruction tuning of projector and LLM.
"""

from vlm.build import BuildSpec
from vlm.recipes.base import RECIPES, RecipeEntry
from vlm.train.config import DataConfig, OptimConfig, Recipe, RunConfig, StageConfig

SIZE = 256  # 4x4 tokens after the fifth stage; the smallest objects are 18 px
DIALOG = dict(tasks=["dialog"], image_size=SIZE, max_length=256)  # every question about a scene in one conversation
DEFAULT = Recipe(
    name="llava_convnext",
    model=BuildSpec(
        vision="tiny-convnext-shapes", projector="mlp2x_gelu", llm="tiny-llama", template="llama3",
        image_size=SIZE, vision_feature_layer=-1, vision_overrides={"stage5_depth": 1, "stage5_hidden_size": 192},
    ),
    # the LLM is random here, so aligning to it (stage 1) is kept short; the budget goes to stages 2-3, each warming
    # up over 30 % of its steps (a one-cycle-like schedule: existence and POPE stop leaning on "yes")
    stages=[
        StageConfig(
            name="align",
            train={"vision": "from:5", "projector": "full", "llm": "frozen"},
            data=DataConfig(n_images=480, **DIALOG), optim=OptimConfig(lr=1e-3), batch_size=16, group_by_length=False,
        ),
        StageConfig(
            name="pretrain",
            train={"vision": "from:3", "projector": "full", "llm": "full"},
            data=DataConfig(n_images=3200, **DIALOG),
            optim=OptimConfig(lr=2e-3, lr_vision=1e-4, warmup_ratio=0.3),  # at the LLM's rate the encoder forgets colour
            batch_size=16, group_by_length=False,
        ),
        StageConfig(
            name="instruct",
            train={"vision": "frozen", "projector": "full", "llm": "full"},
            data=DataConfig(n_images=5600, **DIALOG), optim=OptimConfig(lr=2e-3, warmup_ratio=0.3),
            batch_size=16, group_by_length=False,
        ),
    ],
    run=RunConfig(output_dir="runs/llava_convnext", num_workers=1),
)

_DATA = "data/llava"  # the corpora, laid out as data/README.md shows; `vlm data prepare data/llava` writes the YAMLs
# the laion ConvNeXt-L CLIP in open_clip's hub layout, read by open_clip (its timm trunk + ConvLLaVA's fifth stage)
PAPER_VISION = "open_clip:hf-hub:laion/CLIP-convnext_large_d_320.laion2B-s29B-b131K-ft-soup"
PAPER = Recipe(
    name="llava_convnext",
    model=BuildSpec(
        vision=PAPER_VISION, projector="mlp2x_gelu",
        llm="lmsys/vicuna-7b-v1.5", template="vicuna_v1", image_size=768, vision_feature_layer=-1,
        vision_overrides={"stage5_depth": 6, "stage5_hidden_size": 3072}, dtype="bfloat16",
    ),
    stages=[
        StageConfig(
            name="align",
            train={"vision": "from:5", "projector": "full", "llm": "frozen"},
            data=DataConfig(source="mixture", path=f"{_DATA}/convllava_stage1.yaml", max_length=2048),
            optim=OptimConfig(lr=3e-4), batch_size=32, save_every=500,
        ),
        StageConfig(
            name="pretrain",
            train={"vision": "from:3", "projector": "full", "llm": "full"},
            data=DataConfig(source="mixture", path=f"{_DATA}/convllava_stage2.yaml", max_length=2048),
            optim=OptimConfig(lr=2e-5), batch_size=16, save_every=500,
        ),
        StageConfig(
            name="instruct",
            train={"vision": "frozen", "projector": "full", "llm": "full"},
            data=DataConfig(source="mixture", path=f"{_DATA}/llava15_finetune.yaml", max_length=2048),
            optim=OptimConfig(lr=2e-5), batch_size=16, save_every=500,
        ),
    ],
    run=RunConfig(output_dir="runs/convllava-7b", mixed_precision="bf16", gradient_checkpointing=True, eval_limit=0),
)

RECIPES.register("llava_convnext", RecipeEntry(DEFAULT, {"paper": PAPER}, __doc__))
