"""The `vlm` command: build, info, export."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from vlm.eval.cli import add_eval_args, run_eval
from vlm.registry import Registry

COMMANDS: Registry[tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = (
    Registry("command")
)


def _layers(text: str) -> int | list[int]:
    values = [int(v) for v in text.split(",")]
    return values[0] if len(values) == 1 else values


def _build_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--vision", required=True, help="vision encoder: registry key (tiny-clip, ...), folder or hub id"
    )
    p.add_argument("--projector", required=True, help="projector registry key (linear, mlp2x_gelu, ...)")
    p.add_argument("--llm", required=True, help="causal LM: registry key (tiny-llama, ...), folder or hub id")
    p.add_argument("--out", required=True, help="folder to write the model and processor to")
    p.add_argument("--template", help="chat template key (default: the LLM tokenizer's own)")
    p.add_argument("--feature-layer", type=_layers, default=-2, help="vision layer index or comma list (-2)")
    p.add_argument(
        "--select-strategy",
        choices=["default", "full"],
        default="default",
        help="default: drop CLS/register tokens; full: keep them",
    )
    p.add_argument("--image-size", type=int, help="input resolution (default: the encoder's)")
    p.add_argument("--aspect", choices=["pad", "resize", "crop"], default="pad")
    p.add_argument(
        "--high-res", default="none", help="none | anyres (LLaVA-NeXT tiles) | tiles (NVLM-D tiles with tags)"
    )
    p.add_argument("--max-tiles", type=int, default=6, help="most tiles per image for --high-res tiles")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--seed", type=int, default=0)


def _build(a: argparse.Namespace) -> int:
    from vlm.build import BuildSpec, build
    from vlm.info import describe, format_info

    spec = BuildSpec(
        vision=a.vision,
        projector=a.projector,
        llm=a.llm,
        template=a.template,
        vision_feature_layer=a.feature_layer,
        vision_feature_select_strategy=a.select_strategy,
        image_size=a.image_size,
        aspect=a.aspect,
        high_res=a.high_res,
        max_tiles=a.max_tiles,
        dtype=a.dtype,
        seed=a.seed,
    )
    model, processor = build(spec)
    model.save_pretrained(a.out)
    processor.save_pretrained(a.out)
    print(format_info(describe(a.out)))
    return 0


def _info_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="a vlm model folder")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _info(a: argparse.Namespace) -> int:
    from vlm.info import describe, format_info

    info = describe(a.path)
    print(json.dumps(info, indent=2) if a.json else format_info(info))
    return 0


def _export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="a vlm model folder")
    p.add_argument("--to", required=True, choices=["llava-hf"], help="target format")
    p.add_argument("--out", required=True, help="folder to write the exported model to")


def _export(a: argparse.Namespace) -> int:
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from vlm.export import NotExportableError, export_hf

    model = AutoModelForImageTextToText.from_pretrained(a.path)
    processor = AutoProcessor.from_pretrained(a.path)
    try:  # Llava, or LlavaNext for anyres models: whichever the parts fit
        out, target = export_hf(model, processor, a.out)
    except NotExportableError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {out}: loads with transformers.{target}.from_pretrained")
    return 0


def _merge_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="RUN/stages/NAME/checkpoints/checkpoint-N")
    p.add_argument("--out", required=True, help="folder to write the merged model and processor to")


def _merge(a: argparse.Namespace) -> int:
    from vlm.train.merge import merge_checkpoint

    print(f"merged model: {merge_checkpoint(a.checkpoint, a.out)}")
    return 0


def _chat(a: argparse.Namespace) -> int:
    from vlm.chat.main import run  # gradio and the model load only here

    return run(a)


def _chat_args(p: argparse.ArgumentParser) -> None:
    from vlm.chat.main import add_arguments  # standard library only

    add_arguments(p)


COMMANDS.register("chat", (_chat_args, _chat))


def _parts_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--write", metavar="README", help="replace this file's parts tables (between its parts-table markers)")
    p.add_argument("--check", metavar="README", help="exit 1 when this file's parts tables are not the generated ones")


def _parts(a: argparse.Namespace) -> int:
    from vlm.parts_table import run  # builds the parts matrix verdicts: torch and the tiny parts

    return run(a)


COMMANDS.register("parts", (_parts_args, _parts))


COMMANDS.register("build", (_build_args, _build))
COMMANDS.register("info", (_info_args, _info))
COMMANDS.register("export", (_export_args, _export))
COMMANDS.register("merge", (_merge_args, _merge))
COMMANDS.register("eval", (add_eval_args, run_eval))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vlm", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        add_args, _ = COMMANDS.get(name)
        add_args(sub.add_parser(name))
    args = parser.parse_args(argv)
    import vlm  # noqa: F401  (registers the Auto classes)

    _, run = COMMANDS.get(args.command)
    try:
        return run(args)
    except (FileNotFoundError, KeyError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
