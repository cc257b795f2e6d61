"""``vlm parts``: the parts tables (encoders, sources, projectors, high-res, what works with what)."""

from __future__ import annotations

import argparse
import sys

from vlm.cli import COMMANDS, Command


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--write", metavar="FILE", help="replace the generated blocks FILE holds (README.md's parts tables, "
                   "ARCHITECTURE.md's registries)")
    p.add_argument("--check", metavar="FILE", help="exit 1 when FILE's generated blocks are not the current ones")


def run(a: argparse.Namespace) -> int:
    from vlm.parts.table import render, stale, write

    if a.check:
        if stale(a.check):
            print(f"{a.check}: generated blocks are stale ({', '.join(stale(a.check))}); regenerate them with "
                  f"`vlm parts --write {a.check}`", file=sys.stderr)
            return 1
        print(f"{a.check}: generated blocks are current")
        return 0
    if a.write:
        print(f"{a.write}: generated blocks {'updated' if write(a.write) else 'already current'}")
        return 0
    print(render())
    return 0


COMMANDS.register("parts", Command("print (or write into the README) the parts tables", add_arguments, run))
