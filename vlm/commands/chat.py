"""``vlm chat``: the Gradio chat page (or ``--cli`` the terminal) for a model folder."""

from __future__ import annotations

import argparse

from vlm.chat.main import add_arguments
from vlm.cli import COMMANDS, Command


def run(a: argparse.Namespace) -> int:
    from vlm.chat.main import run as serve

    return serve(a)


COMMANDS.register("chat", Command("chat with a model in the browser (or --cli in the terminal)", add_arguments, run))
