"""``vlm build``: assemble an untrained VLM from parts and save it as a model folder."""

from __future__ import annotations

import argparse
import json

from vlm.attention import ATTN_IMPLEMENTATIONS
from vlm.cli import COMMANDS, Command


def _layers(text: str) -> int | list[int]:
    values = [int(v) for v in text.split(",")]
    return values[0] if len(values) == 1 else values


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def _pinpoints(text: str) -> list[list[int]]:
    """``336x672,672x336`` -> [[336, 672], [672, 336]] (height x width)."""
    return [[int(v) for v in p.lower().split("x")] for p in text.split(",") if p.strip()]


def _overrides(pairs: list[str]) -> dict[str, int | float | str]:
    out: dict[str, int | float | str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"--vision-overrides {pair!r}: expected KEY=VALUE")
        for cast in (int, float, str):
            try:
                out[key] = cast(value)
                break
            except ValueError:
                continue
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--vision", required=True, help="vision encoder: named part (tiny-clip, ...), folder, hub id, "
                   "open_clip:NAME, timm:NAME; a+b fuses two")
    p.add_argument("--projector", required=True, help="projector key (linear, mlp2x_gelu, pool2x2, ...)")
    p.add_argument("--llm", required=True, help="causal LM: named part (tiny-llama, ...), folder or hub id")
    p.add_argument("--out", required=True, help="folder to write the model and processor to")
    p.add_argument("--template", help="chat template key (default: the LLM tokenizer's own)")
    p.add_argument("--vision-feature-layer", type=_layers, default=-2, help="vision layer index or comma list (-2)")
    p.add_argument("--vision-feature-select-strategy", choices=["default", "full"], default="default",
                   help="default: drop CLS/register tokens; full: keep them")
    p.add_argument("--image-size", type=int, help="input resolution (default: the encoder's)")
    p.add_argument("--aspect", choices=["pad", "resize", "crop"], default="pad")
    p.add_argument("--vision-overrides", nargs="*", default=[], metavar="KEY=VALUE",
                   help="set on the vision config before the encoder is built, e.g. stage5_depth=6 stage5_hidden_size=3072")
    p.add_argument("--s2-scales", type=_ints, help="S²: image sizes the encoder runs at, e.g. 336,672,1008")
    p.add_argument("--high-res", default="none", help="none | anyres (LLaVA-NeXT tiles) | tiles (NVLM-D tiles with tags)")
    p.add_argument("--image-grid-pinpoints", type=_pinpoints, help="anyres canvases HxW,HxW (default: LLaVA-NeXT's scaled)")
    p.add_argument("--max-tiles", type=int, default=6, help="most tiles per image for --high-res tiles")
    p.add_argument("--attn-implementation", choices=ATTN_IMPLEMENTATIONS,
                   help="attention of the LLM and the vision tower, kept in the folder (default: transformers', sdpa)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--seed", type=int, default=0)


def run(a: argparse.Namespace) -> int:
    from vlm.build import BuildSpec, build
    from vlm.info import describe, format_info

    spec = BuildSpec(
        vision=a.vision, projector=a.projector, llm=a.llm, template=a.template,
        vision_feature_layer=a.vision_feature_layer, vision_feature_select_strategy=a.vision_feature_select_strategy,
        image_size=a.image_size, aspect=a.aspect, vision_overrides=_overrides(a.vision_overrides),
        s2_scales=a.s2_scales, high_res=a.high_res, image_grid_pinpoints=a.image_grid_pinpoints,
        max_tiles=a.max_tiles, dtype=a.dtype, seed=a.seed, attn_implementation=a.attn_implementation,
    )
    model, processor = build(spec)
    model.save_pretrained(a.out)
    processor.save_pretrained(a.out)
    print(format_info(describe(a.out)))
    return 0


COMMANDS.register("build", Command("assemble an untrained VLM from parts into a model folder", add_arguments, run))


def _info_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="a vlm model folder")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _info(a: argparse.Namespace) -> int:
    from vlm.info import describe, format_info

    info = describe(a.path)
    print(json.dumps(info, indent=2) if a.json else format_info(info))
    return 0


COMMANDS.register("info", Command("describe a model folder: parts, parameters, tokens per image", _info_arguments, _info))
