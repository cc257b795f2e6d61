"""``vlm plan``: a recipe at real size before any weight exists (see `vlm.train.plan`).

    vlm plan llava15 --preset paper --gpus 8 --gpu-memory 80
    vlm plan llava_convnext --preset paper --image-sizes 768,1024,1536
    vlm plan llava15 --preset paper --model.attn_implementation eager --stages.instruct.batch_size 4
"""

from __future__ import annotations

import argparse

from vlm.cli import COMMANDS, Command


def _sizes(text: str) -> list[int | tuple[int, int]]:
    """``768,1024`` (square) or ``336x672,672x336`` (height x width) -> sizes."""
    out: list[int | tuple[int, int]] = []
    for item in filter(None, (v.strip() for v in text.split(","))):
        h, sep, w = item.lower().partition("x")
        out.append((int(h), int(w)) if sep else int(h))
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", help="a recipe (vlm train --list), then --preset NAME and any --a.b.c value override")
    p.add_argument("--gpus", type=int, default=8, help="GPUs per node (8)")
    p.add_argument("--nodes", type=int, default=1, help="nodes (1)")
    p.add_argument("--gpu-memory", type=float, default=80.0, help="memory per GPU in GiB (80)")
    p.add_argument("--image-sizes", type=_sizes, help="tokens per image at these sizes: 768,1024 or HxW,HxW "
                   "(default: the model's size; anyres: its grid canvases)")


def run(argv: list[str]) -> int:
    from vlm.recipes.base import RECIPES
    from vlm.recipes.run import resolve
    from vlm.train.plan import Hardware, format_plan, plan_recipe

    parser = argparse.ArgumentParser(prog="vlm plan", description=__doc__.split("\n")[0].strip("`"))
    add_arguments(parser)
    args, overrides = parser.parse_known_args(argv)
    entry = RECIPES.get(args.recipe)
    recipe = resolve(entry.default, entry.presets, overrides)
    hardware = Hardware(gpus=args.gpus, nodes=args.nodes, gpu_memory=args.gpu_memory)
    print(format_plan(plan_recipe(recipe, hardware, args.image_sizes)))
    return 0


COMMANDS.register("plan", Command("parameters, tokens and per-GPU memory of a recipe at real size, with no weights",
                                  add_arguments, run, passthrough=True))
