"""`vlm chat` / `python app/chat.py`: arguments, finding the model, then the web page or the terminal.

This module imports only the standard library at the top, so `vlm --help` stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

DEFAULT_MODEL = Path("runs/llava_convnext/model")  # where `accelerate launch recipes/llava_convnext.py` writes
NO_MODEL = """No --model given, and the embedded default's model is not at {where}.
Train it (under 10 minutes on a 2-core CPU, no downloads):
    vlm train llava_convnext
then run this command again. Or chat with any vlm model folder:
    vlm chat --model PATH
(an untrained one in seconds: vlm build --vision tiny-clip --projector mlp2x_gelu --llm tiny-llama --out runs/tiny)"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help=f"a vlm model folder (default: {DEFAULT_MODEL} when it exists)")
    p.add_argument("--cli", action="store_true", help="chat in the terminal instead of the browser")
    p.add_argument("--image", action="append", default=[], help="(--cli) image to attach to the first message")
    p.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                   help="address to bind (default: $GRADIO_SERVER_NAME or 127.0.0.1)")
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
                   help="port (default: $GRADIO_SERVER_PORT or 7860)")
    p.add_argument("--share", action="store_true", help="also open a public gradio.live link")
    p.add_argument("--concurrency", type=int, default=1, help="answers generated at once; others queue (1)")
    p.add_argument("--max-images", type=int, default=4, help="images per conversation, capped by the context (4)")
    p.add_argument("--device", help="cuda, cpu, ... (default: cuda when available)")
    p.add_argument("--temperature", type=float, default=0.2, help="initial temperature, 0 = greedy (0.2)")
    p.add_argument("--top-p", type=float, default=0.9, help="initial top-p (0.9)")
    p.add_argument("--max-new-tokens", type=int, default=128, help="initial max new tokens (128)")


def default_candidates() -> list[Path]:
    """Where the default recipe's model may be: under the current folder, then under the checkout."""
    return [DEFAULT_MODEL, Path(__file__).resolve().parents[2] / DEFAULT_MODEL]


def find_model(model: str | None, candidates: list[Path] | None = None) -> Path:
    """The folder to serve, or `FileNotFoundError` with a message that says how to get one."""
    if model:
        path = Path(model)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path} is not a model folder (no config.json there)")
        return path
    candidates = default_candidates() if candidates is None else candidates
    for path in candidates:
        if (path / "config.json").is_file():
            return path
    raise FileNotFoundError(NO_MODEL.format(where=DEFAULT_MODEL))


def run(args: argparse.Namespace) -> int:
    from vlm.chat.session import ChatEngine, Settings
    from vlm.extras import require
    from vlm.info import describe

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        if not args.cli:
            require("gradio")  # before the model loads: says which extra installs it
        path = find_model(args.model)
        info = describe(path)
        print(f"loading {path} ...", file=sys.stderr)
        engine = ChatEngine.load(path, device=args.device, max_images=args.max_images, workers=args.concurrency)
    except (OSError, ValueError, RuntimeError, ImportError) as err:  # no gradio, no model folder, unreadable weights
        print(f"error: {err}", file=sys.stderr)
        return 2
    settings = Settings(args.temperature, args.top_p, args.max_new_tokens)
    if args.cli:
        from vlm.chat.terminal import chat_in_terminal

        return chat_in_terminal(engine, settings, images=args.image)
    from vlm.chat.app import build_demo

    demo = build_demo(engine, info, settings)
    demo.queue(default_concurrency_limit=max(1, args.concurrency), max_size=64)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, max_file_size="64mb")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python app/chat.py", description="Chat with a vlm model.")
    add_arguments(parser)
    args = parser.parse_args(argv)
    import vlm  # noqa: F401  (registers the Auto classes)

    return run(args)
