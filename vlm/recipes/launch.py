"""``vlm train``: list recipes, explain one, print its resolved config, or run it (also under
``accelerate launch``; `recipes/NAME.py` in a checkout are the same command for one recipe).

    vlm train --list
    vlm train RECIPE --help
    vlm train RECIPE [--preset NAME] [--config RUN/config.yaml] [--a.b.c value ...] [--print-config]
"""

from __future__ import annotations

import sys

from vlm.recipes.base import RECIPES, RecipeEntry
from vlm.recipes.run import resolve, run_recipe
from vlm.train.checkpoint import CheckpointWriteError
from vlm.train.config import Recipe
from vlm.train.overrides import OverrideError, to_yaml

USAGE = "usage: vlm train RECIPE [--preset NAME] [--config RUN/config.yaml] [--a.b.c value ...] [--print-config]"
OVERRIDES = """Overrides: any field of the resolved config (see --print-config) as --path value:
  --stages.instruct.optim.lr 1e-5     a stage's field (stages by name)
  --stages.instruct.lora.r 16         a stage kind's own options (LoRA, DPO's beta, ...)
  --model.llm lmsys/vicuna-7b-v1.5    the parts (registry key, folder or hub id)
  --seed 1 --output_dir runs/x        run settings may drop their `run.` prefix (--resume, --strict ...)
Values: none, a,b (lists), k=v,k=v (dicts), true/false; a flag alone means true."""


def listing() -> str:
    rows = []
    for name in RECIPES:
        entry = RECIPES.get(name)
        presets = ", ".join(entry.presets) or "-"
        rows.append(f"{name:<20} {entry.summary}\n{'':<20} presets: {presets}")
    return "\n".join(rows)


def describe(name: str, entry: RecipeEntry) -> str:
    lines = [f"vlm train {name}: {entry.summary}", "", USAGE.replace("RECIPE", name), ""]
    lines += [f"  (no --preset)  {_one_line(entry.default)}"]
    lines += [f"  --preset {key:<16}{_one_line(recipe)}" for key, recipe in entry.presets.items()]
    lines += ["", "Stages of the embedded default:"]
    lines += [f"  {s.name:<12} {s.kind:<10} train {_modes(s.train)}; data {s.data.source} "
              f"{','.join(s.data.tasks) if s.data.source == 'synthetic' else s.data.path}; lr {s.optim.lr:g}; "
              f"batch {s.batch_size} x accum {s.grad_accum}" + (f"; {s.max_steps} steps" if s.max_steps else "")
              for s in entry.default.stages]
    lines += ["", OVERRIDES, "", entry.doc.strip()]
    return "\n".join(lines)


def _modes(train: dict[str, str]) -> str:
    return ",".join(f"{part}={mode}" for part, mode in train.items())


def _one_line(recipe: Recipe) -> str:
    parts = (f"{recipe.model.vision} + {recipe.model.projector} + {recipe.model.llm}" if recipe.model
             else f"from {recipe.run.start_from}")
    return f"{parts}; stages {', '.join(s.name for s in recipe.stages)} -> {recipe.run.output_dir}"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(f"{USAGE}\n\nRecipes:\n{listing()}\n\n{OVERRIDES}")
        return 0
    if argv[0] == "--list":
        print(listing())
        return 0
    if argv[0].startswith("--config"):  # a saved run's config: no recipe name needed
        name, rest, entry = "", argv, RecipeEntry(None)
    else:
        name, rest = argv[0], argv[1:]
        try:
            entry = RECIPES.get(name)
        except KeyError as err:
            print(f"error: {err.args[0]}", file=sys.stderr)
            return 2
    if "-h" in rest or "--help" in rest:
        print(describe(name, entry))
        return 0
    printing = "--print-config" in rest
    try:
        recipe = resolve(entry.default, entry.presets, [a for a in rest if a != "--print-config"])
    except (OverrideError, KeyError, TypeError, OSError) as err:
        print(f"error: {err.args[0] if err.args else err}", file=sys.stderr)
        return 2
    except SystemExit as exit_:
        print(f"error: {exit_.code}", file=sys.stderr)
        return 2
    if printing:
        print(to_yaml(recipe), end="")
        return 0
    try:
        run_recipe(recipe)
    except CheckpointWriteError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def run_file(name: str) -> None:
    """The body of a checkout's ``recipes/NAME.py``: ``vlm train NAME`` with the script's arguments."""
    sys.exit(main([name, *sys.argv[1:]]))
