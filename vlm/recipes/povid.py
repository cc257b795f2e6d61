"""POVID (Zhou et al. 2024): DPO after instruction tuning, with AI-made dispreferred answers.

    vlm train povid                          # from llava_convnext's model (its stages run first if absent)
    vlm train povid --run.start_from DIR --seed 2 --run.output_dir runs/povid-s2
    vlm train povid --preset existence_first # teach object existence first (see below)
    vlm train povid --preset noisy_teacher   # ... from a hallucinating teacher (see below)

Stage 1 (povid_text): DPO, chosen = ground-truth answer, rejected = the answer with hallucinations
injected (object / attribute / count / relation / existence swaps from the synthetic ground truth;
`vlm.data.povid.ChatLLMRewriter` for real data). Stage 2 (povid_noise): 0.5 DPO(text pair) +
0.5 DPO(chosen vs the model's own greedy tokens under a diffusion-noised image, step 500 of 1000).
Both read the pairs of train scenes 8000-8599, which no earlier stage trained on. The evaluation
probes hallucination (POPE, the yes/no AUC per POPE split, CHAIR-style captions) on the model
povid_text starts from and on the final model, side by side.

`--preset existence_first` first trains an `existence` stage (SFT on the `objects` yes/no questions,
2000 x 32), then POVID at lr 5e-5 for 150 + 150 steps, compared against the existence model.
`--preset noisy_teacher` trains that stage on `objects_noisy_teacher`: the same questions answered
by a teacher that calls 40 % of the co-occurring absent objects present (as GPT-written
instruction data mentions objects that co-occur but are not there), so POVID has a learned
hallucination to correct.
"""

from vlm.recipes.base import RECIPES, RecipeEntry
from vlm.train.config import DataConfig, OptimConfig, Recipe, RunConfig, StageConfig
from vlm.train.stages.dpo import DPOOptions

START = "recipe:llava_convnext"
FRESH_SCENES = 8000  # the pairs' scenes follow every scene the instruct (5 600) and existence (6 000) stages saw
PROBES = ["synthetic_pope", "synthetic_pope_auc", "synthetic_chair"]
TRAIN = {"vision": "frozen", "projector": "full", "llm": "full"}


def povid_stages(lr: float = 1e-4, steps: int = 80) -> list[StageConfig]:
    data = DataConfig(tasks=["povid"], n_images=600, first_image=FRESH_SCENES, image_size=256, max_length=128)
    return [
        StageConfig(name="povid_text", kind="dpo", train=TRAIN, data=data,
                    options=DPOOptions(beta=0.1, text_weight=1.0, noise_weight=0.0),
                    optim=OptimConfig(lr=lr), batch_size=16, group_by_length=False, max_steps=steps, log_every=10),
        StageConfig(name="povid_noise", kind="dpo", train=TRAIN, data=data,
                    options=DPOOptions(beta=0.1, text_weight=0.5, noise_weight=0.5, noise_step=500),
                    optim=OptimConfig(lr=lr), batch_size=16, group_by_length=False, max_steps=steps, log_every=10),
    ]


def existence_stage(task: str = "objects") -> StageConfig:
    """SFT on the yes/no questions of ``task`` only; the model then answers every question yes/no."""
    return StageConfig(name="existence", kind="sft", train=TRAIN,
                       data=DataConfig(tasks=[task], n_images=6000, image_size=256, max_length=128),
                       optim=OptimConfig(lr=3e-3), batch_size=32, group_by_length=False, max_steps=2000, log_every=50)


def _run(output_dir: str) -> RunConfig:
    return RunConfig(output_dir=output_dir, start_from=START, compare_with="povid_text", eval_tasks=PROBES,
                     eval_limit=600)


DEFAULT = Recipe("povid", None, povid_stages(), _run("runs/povid"))
PRESETS = {
    "existence_first": Recipe("povid", None, [existence_stage(), *povid_stages(lr=5e-5, steps=150)],
                              _run("runs/povid-existence")),
    "noisy_teacher": Recipe("povid", None, [existence_stage("objects_noisy_teacher"), *povid_stages(lr=5e-5, steps=150)],
                            _run("runs/povid-noisy-teacher")),
}

RECIPES.register("povid", RecipeEntry(DEFAULT, PRESETS, __doc__))
