"""``vlm train``: run a recipe (see `vlm.recipes.launch`)."""

from __future__ import annotations

import argparse

from vlm.cli import COMMANDS, Command


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", nargs="?", help="a recipe (vlm train --list), then --preset, --config, --a.b.c value ...")


def run(argv: list[str]) -> int:
    from vlm.recipes.launch import main

    return main(argv)


COMMANDS.register("train", Command("train a recipe: vlm train --list, vlm train RECIPE --help", add_arguments, run,
                                   passthrough=True))
