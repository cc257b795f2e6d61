"""``vlm export``: a model folder in transformers' native Llava / LlavaNext format, where the parts allow it."""

from __future__ import annotations

import argparse
import sys

from vlm.cli import COMMANDS, Command

TARGETS = {"llava": "LlavaForConditionalGeneration", "llava-next": "LlavaNextForConditionalGeneration"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="a vlm model folder")
    p.add_argument("--to", default="auto", choices=["auto", *TARGETS],
                   help="llava (LlavaForConditionalGeneration), llava-next (anyres models) or auto: the first that fits")
    p.add_argument("--out", required=True, help="folder to write the exported model to")


def run(a: argparse.Namespace) -> int:
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from vlm.export import NotExportableError, export_hf

    model = AutoModelForImageTextToText.from_pretrained(a.path)
    processor = AutoProcessor.from_pretrained(a.path)
    try:
        out, target = export_hf(model, processor, a.out, TARGETS.get(a.to))
    except NotExportableError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {out}: loads with transformers.{target}.from_pretrained")
    return 0


COMMANDS.register("export", Command("export to transformers' Llava or LlavaNext format", add_arguments, run))
