"""``vlm merge``: any training checkpoint (plain or DeepSpeed, LoRA or full) to a plain model folder."""

from __future__ import annotations

import argparse

from vlm.cli import COMMANDS, Command


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="RUN/stages/NAME/checkpoints/checkpoint-N")
    p.add_argument("--out", required=True, help="folder to write the merged model and processor to")


def run(a: argparse.Namespace) -> int:
    from vlm.train.merge import merge_checkpoint

    print(f"merged model: {merge_checkpoint(a.checkpoint, a.out)}")
    return 0


COMMANDS.register("merge", Command("turn a training checkpoint into a model folder (LoRA merged)", add_arguments, run))
