"""POVID (Zhou et al. 2024): DPO after instruction tuning, with AI-made dispreferred answers.

    accelerate launch recipes/povid.py                 # from runs/llava_convnext/model (trained first if absent)
    accelerate launch recipes/povid.py --run.start_from DIR --seed 2 --run.output_dir runs/povid-s2
    accelerate launch recipes/povid.py --preset existence_first   # teach existence first (see below)
    accelerate launch recipes/povid.py --preset noisy_teacher     # ... from a hallucinating teacher (see below)

Stage 1 (povid_text): DPO, chosen = ground-truth answer, rejected = the answer with hallucinations
injected (object / attribute / count / relation / existence swaps from the synthetic ground truth;
`vlm.data.povid.ChatLLMRewriter` for real data). Stage 2 (povid_noise): 0.5 DPO(text pair) +
0.5 DPO(chosen vs the model's own greedy tokens under a diffusion-noised image, step 500 of 1000).
Both read the pairs of train scenes 6000-6599, which no earlier stage trained on.
The run ends with the POPE-style probe of the model the first DPO stage started from and the final
model (RUN/pope.json).

The default's random tiny LM cannot tell present from absent objects (yes/no AUC 0.5), so DPO has
nothing to sharpen. `--preset existence_first` first trains an `existence` stage (SFT on the `objects`
yes/no questions only, 2000 x 32) and then POVID at lr 5e-5 for 150 + 150 steps; the probe then
compares POVID against the existence-trained model. That model answers every question yes or no, so
it serves the hallucination probe, not as a chat model. `--preset noisy_teacher` trains that stage on
`objects_noisy_teacher` instead: the same questions answered by a teacher that calls 40 % of the
co-occurring absent objects present (as GPT-written instruction data mentions objects that
co-occur but are not there), so the start model hallucinates the way POVID's start models do and
POVID's ground-truth pairs can correct it.
"""

import importlib.util
from pathlib import Path

from vlm.train.config import DataConfig, OptimConfig, PreferenceConfig, Recipe, RunConfig, StageConfig

HERE = Path(__file__).resolve().parent
START = HERE.parent / "runs" / "llava_convnext" / "model"


def _instruct_recipe() -> Recipe:
    spec = importlib.util.spec_from_file_location("llava_convnext", HERE / "llava_convnext.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.DEFAULT


FRESH_SCENES = 6000  # the pairs' scenes follow every scene the instruct (5 000) and existence (6 000) stages saw


def povid_stages(image_size: int = 256, lr: float = 1e-4, steps: int = 80) -> list[StageConfig]:
    train = {"vision": "frozen", "projector": "full", "llm": "full"}
    data = DataConfig(tasks=["povid"], n_images=600, first_image=FRESH_SCENES, image_size=image_size, max_length=128)
    return [
        StageConfig(name="povid_text", kind="dpo", train=train, data=data,
                    dpo=PreferenceConfig(beta=0.1, text_weight=1.0, noise_weight=0.0),
                    optim=OptimConfig(lr=lr), batch_size=16, group_by_length=False, max_steps=steps, log_every=10),
        StageConfig(name="povid_noise", kind="dpo", train=train, data=data,
                    dpo=PreferenceConfig(beta=0.1, text_weight=0.5, noise_weight=0.5, noise_step=500),
                    optim=OptimConfig(lr=lr), batch_size=16, group_by_length=False, max_steps=steps, log_every=10),
    ]


def existence_stage(image_size: int = 256, task: str = "objects") -> StageConfig:
    """SFT on the yes/no questions of `task` only (`objects`, or `objects_noisy_teacher`); the model then
    answers every question yes/no."""
    return StageConfig(name="existence", kind="sft", train={"vision": "frozen", "projector": "full", "llm": "full"},
                       data=DataConfig(tasks=[task], n_images=6000, image_size=image_size, max_length=128),
                       optim=OptimConfig(lr=3e-3), batch_size=32, group_by_length=False, max_steps=2000, log_every=50)


DEFAULT = Recipe("povid", _instruct_recipe().model, povid_stages(),
                 RunConfig(output_dir="runs/povid", start_from=str(START)))
PRESETS = {"existence_first": Recipe("povid", DEFAULT.model, [existence_stage(), *povid_stages(lr=5e-5, steps=150)],
                                     RunConfig(output_dir="runs/povid-existence", start_from=str(START))),
           "noisy_teacher": Recipe("povid", DEFAULT.model,
                                   [existence_stage(task="objects_noisy_teacher"), *povid_stages(lr=5e-5, steps=150)],
                                   RunConfig(output_dir="runs/povid-noisy-teacher", start_from=str(START)))}


def with_instruct_first(recipe: Recipe) -> Recipe:
    """Without the default recipe's instruction-tuned model, its stages run first in this run."""
    if recipe.run.start_from == str(START) and not START.is_dir():
        recipe.stages = _instruct_recipe().stages + recipe.stages
        recipe.run.start_from = None
    return recipe


def start_of_preference(recipe: Recipe) -> Path:
    """The folder the first DPO stage starts from (before/after comparisons use it)."""
    run_dir = Path(recipe.run.output_dir)
    names = [s.name for s in recipe.stages]
    first = next(i for i, s in enumerate(recipe.stages) if s.kind == "dpo")
    return run_dir / "init" if first == 0 else run_dir / "stages" / names[first - 1] / "model"


if __name__ == "__main__":
    import sys

    from accelerate import PartialState

    from vlm.eval import hallucination as pope_probe
    from vlm.train.recipe import resolve, run_recipe

    recipe = with_instruct_first(resolve(DEFAULT, PRESETS, sys.argv[1:]))
    final = run_recipe(recipe)
    if PartialState().is_main_process and recipe.run.eval_limit != 0:
        size = recipe.stages[-1].data.image_size
        result = pope_probe.compare(start_of_preference(recipe), final, Path(recipe.run.output_dir) / "pope.json",
                                    100, size)
        print(pope_probe.table(result))
