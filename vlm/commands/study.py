"""``vlm study``: run a registered study (its arms, then the comparison table)."""

from __future__ import annotations

import argparse
from pathlib import Path

from vlm.cli import COMMANDS, Command


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", help="a study (none: list them)")
    p.add_argument("--out", help="folder for the arms and the report (default runs/study-NAME)")
    p.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 per arm (1)")
    p.add_argument("overrides", nargs=argparse.REMAINDER, help="--a.b value overrides for every arm")


def run(a: argparse.Namespace) -> int:
    from vlm.studies.base import STUDIES, run_study

    if a.name is None:
        for name in STUDIES:
            print(f"{name:<16} {STUDIES.get(name).doc.strip().splitlines()[0]}")
        return 0
    run_study(STUDIES.get(a.name), Path(a.out or f"runs/study-{a.name}"), tuple(range(a.seeds)), a.overrides)
    return 0


COMMANDS.register("study", Command("run a study: arms that differ in one factor, side by side", add_arguments, run))
