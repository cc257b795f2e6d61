"""The same conversation in a terminal: `/image PATH...` attaches images, answers stream as printed text."""

from __future__ import annotations

import shlex
import sys
from typing import TextIO

from vlm.chat.session import ChatEngine, Conversation, Settings, Turn
from vlm.chat.uploads import ChatInputError, read_images

HELP = """Commands:
  /image PATH [PATH ...]  attach image(s) to your next message
  /clear                  start a new conversation
  /quit                   leave (or Ctrl-D)
Anything else is your message. Ctrl-C stops an answer."""


def chat_in_terminal(
    engine: ChatEngine,
    settings: Settings,
    images: list[str] | None = None,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
) -> int:
    """Read lines from ``stdin`` until EOF or ``/quit``; stream each answer to ``stdout``."""
    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    conversation, pending = Conversation(), []
    interactive = stdin.isatty()

    def say(text: str = "", end: str = "\n") -> None:
        stdout.write(text + end)
        stdout.flush()

    def attach(paths: list[str]) -> None:
        uploads, problems = read_images(paths)
        for problem in problems:
            say(f"error: {problem}")
        for upload in uploads:
            notes = f" ({'; '.join(upload.notes)})" if upload.notes else ""
            say(f"attached {upload.name}{notes}")
        pending.extend(upload.image for upload in uploads)

    say(f"Chatting with {engine.model.config.name_or_path or 'the model'}. {HELP}")
    if images:
        attach(images)
    while True:
        if interactive:
            say("you> ", end="")
        line = stdin.readline()
        if not line:
            say()
            return 0
        line = line.strip()
        if line in ("/quit", "/exit"):
            return 0
        if line == "/clear":
            conversation, pending = Conversation(), []
            say("(new conversation)")
            continue
        if line.startswith("/image"):
            try:
                attach(shlex.split(line)[1:])
            except ValueError as err:  # unbalanced quotes
                say(f"error: {err}")
            continue
        if line.startswith("/"):
            say(f"unknown command {line.split()[0]}\n{HELP}")
            continue
        if not line:
            say("error: empty message: type a question" + (" about the image(s)" if pending else ""))
            continue
        try:
            engine.check_image_count(conversation, len(pending))
        except ChatInputError as err:
            say(f"error: {err}")
            pending = []
            continue
        conversation.turns.append(Turn(line, pending))
        pending = []
        _stream(engine, conversation, settings, say)


def _stream(engine: ChatEngine, conversation: Conversation, settings: Settings, say) -> None:
    say("vlm> ", end="")
    shown = ""
    try:
        for answer in engine.stream(conversation, settings):
            say(answer[len(shown) :], end="")
            shown = answer
    except ChatInputError as err:
        conversation.turns.pop()
        say(f"\nerror: {err}")
        return
    except KeyboardInterrupt:  # leaving the stream stops the generation; the partial answer stays
        say(" [stopped]", end="")
    say()
