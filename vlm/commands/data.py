"""``vlm data check`` (a corpus read as training reads it), ``vlm data prepare`` (the presets' mixture files)
and ``vlm data synth`` (the embedded default's world as a LLaVA corpus)."""

from __future__ import annotations

import argparse
from pathlib import Path

from vlm.cli import COMMANDS, Command


def _check_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", type=Path, help="a LLaVA JSON or JSONL file")
    p.add_argument("--image-root", type=Path, help="the folder its image paths are relative to (default: its folder)")
    p.add_argument("--no-decode", action="store_true", help="only check that images exist (fast) instead of decoding them")
    p.add_argument("--strict", action="store_true", help="exit 1 when any sample is bad")
    p.add_argument("--workers", type=int, default=8, help="threads reading images (8)")


def _check(a: argparse.Namespace) -> int:
    from vlm.data.prepare import scan

    report = scan(a.data, a.image_root or a.data.parent, decode=not a.no_decode, workers=a.workers)
    print("\n".join(report.lines()))
    return 1 if a.strict and sum(report.bad.values()) else 0


def _prepare_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("root", type=Path, help="the downloaded corpora, laid out as data/README.md shows")
    p.add_argument("--out", type=Path, help="where the mixture YAMLs go (default: ROOT)")
    p.add_argument("--decode", action="store_true", help="also decode every image (slow)")
    p.add_argument("--workers", type=int, default=8)


def _prepare(a: argparse.Namespace) -> int:
    from vlm.data.prepare import MIXTURES, missing, prepare

    reports, written = prepare(a.root, a.out, a.decode, a.workers)
    for report in reports:
        print("\n".join(report.lines()))
    for path in written:
        print(f"wrote {path}")
    for line in missing(a.root):
        print(f"not found: {line}")
    skipped = sorted(set(MIXTURES) - {p.name for p in written})
    if skipped:
        print(f"not written (a corpus is missing): {', '.join(skipped)}")
    return 0 if written else 1


def _synth_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, required=True, help="folder for TASK.json files and images/")
    p.add_argument("--tasks", default="caption,vqa", help="comma-separated shapes-world tasks (caption,vqa)")
    p.add_argument("--n", type=int, default=1000, help="scenes (1000)")
    p.add_argument("--size", type=int, default=256, help="image side in pixels (256)")
    p.add_argument("--first", type=int, default=0, help="first scene (0)")


def _synth(a: argparse.Namespace) -> int:
    from vlm.data.export import write_llava
    from vlm.data.registry import open_source
    from vlm.train.config import DataConfig

    for task in a.tasks.split(","):
        source = open_source(DataConfig(tasks=[task], n_images=a.n, image_size=a.size, first_image=a.first))
        print(f"{task}: {write_llava([source[i] for i in range(len(source))], a.out, task)}")
    return 0


COMMANDS.register("data check", Command("read every record and image of a LLaVA corpus as training would; "
                                        "report bad samples by kind", _check_arguments, _check))
COMMANDS.register("data prepare", Command("check the downloaded corpora and write the paper presets' mixture files",
                                          _prepare_arguments, _prepare))
COMMANDS.register("data synth", Command("write the shapes world as a LLaVA corpus", _synth_arguments, _synth))
