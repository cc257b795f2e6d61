"""The ``vlm`` command: one subcommand per module of `vlm.commands`, registered in `COMMANDS`.

A command's module imports only what its arguments need; the work happens in ``run``, so
``vlm --help`` stays fast. Keys with a space are subcommands of a group (``eval run``, ``data check``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass

from vlm.registry import Registry

GROUPS = {  # group -> its help line
    "eval": "evaluate on benchmarks, score predictions, list tasks",
    "data": "check, prepare and generate training data",
}


@dataclass(frozen=True)
class Command:
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    passthrough: bool = False  # takes the rest of the command line as it is (``vlm train``)


COMMANDS: Registry[Command] = Registry("command", package="vlm.commands", plugins=False)
ERRORS = (FileNotFoundError, KeyError, ValueError, ImportError)  # reported as one line, exit status 2


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="vlm", description="Assemble, train, evaluate, chat with and export "
                                  "vision-language models.")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction] = {}
    for key in COMMANDS:
        command = COMMANDS.get(key)
        group, _, name = key.rpartition(" ")
        if group and group not in groups:
            holder = sub.add_parser(group, help=GROUPS.get(group, ""), description=GROUPS.get(group, ""))
            groups[group] = holder.add_subparsers(dest="action", required=True, metavar="ACTION")
        target = groups[group] if group else sub
        p = target.add_parser(name, help=command.help, description=command.help)
        command.add_arguments(p)
        p.set_defaults(key=key)
    return top


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    for key in COMMANDS:  # passthrough commands parse their own arguments (overrides are open-ended)
        if COMMANDS.get(key).passthrough and argv[:1] == [key]:
            return COMMANDS.get(key).run(argv[1:])
    args = parser().parse_args(argv)
    import vlm  # noqa: F401  (registers the Auto classes)

    try:
        return COMMANDS.get(args.key).run(args)
    except ERRORS as err:
        print(f"error: {err.args[0] if err.args else err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # `python -m vlm.cli`: run the imported module, the one commands register with
    from vlm.cli import main as cli_main

    sys.exit(cli_main())
