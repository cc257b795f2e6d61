"""``vlm generate``: one answer from a model folder for an image and a prompt, streamed to stdout."""

from __future__ import annotations

import argparse
import json
import sys

from vlm.cli import COMMANDS, Command


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="a vlm model folder")
    p.add_argument("--image", action="append", default=[], help="an image (repeatable; none: a text-only prompt)")
    p.add_argument("--prompt", required=True, help="the question or instruction")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--temperature", type=float, default=0.0, help="0: greedy (default)")
    p.add_argument("--top-p", type=float, default=0.9)
    p.add_argument("--device", help="cuda, cpu, ... (default: cuda when available)")
    p.add_argument("--json", action="store_true", help="print one JSON object at the end instead of streaming")


def run(a: argparse.Namespace) -> int:
    from vlm.chat.session import ChatEngine, Conversation, Settings, Turn
    from vlm.chat.uploads import ChatInputError, read_images

    uploads, problems = read_images(a.image)
    if problems:
        raise ValueError("; ".join(problems))
    engine = ChatEngine.load(a.model, device=a.device, max_images=max(1, len(uploads)))
    conversation = Conversation([Turn(a.prompt, [u.image for u in uploads])])
    shown = ""
    try:
        for answer in engine.stream(conversation, Settings(a.temperature, a.top_p, a.max_new_tokens)):
            if not a.json:
                sys.stdout.write(answer[len(shown):])
                sys.stdout.flush()
            shown = answer
    except ChatInputError as err:
        raise ValueError(str(err)) from None
    if a.json:
        print(json.dumps({"model": a.model, "images": a.image, "prompt": a.prompt, "answer": shown}))
    else:
        print()
    return 0


COMMANDS.register("generate", Command("one answer for an image and a prompt, streamed to stdout", add_arguments, run))
