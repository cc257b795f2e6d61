"""The README's parts tables, rendered from the registries and `vlm.parts_matrix`, so they cannot go stale.

``vlm parts`` (or ``python -m vlm.parts_table``) prints them; ``--write README.md`` replaces the text
between the `START` and `END` markers; ``--check README.md`` exits 1 when that text differs.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from pathlib import Path

from vlm.export import HF_TARGETS
from vlm.highres import HIGH_RES
from vlm.hub import resolve_part
from vlm.layout import image_layout, token_grid
from vlm.parts_matrix import ENCODER_EXAMPLES, VLM_FORMAT, Combination, config_of, verdict
from vlm.projectors import PROJECTORS
from vlm.projectors.grid import GridProjector
from vlm.templates import CHAT_TEMPLATES, IMAGE_TOKEN
from vlm.tiny import TINY_BACKBONES
from vlm.vision import encoder_class
from vlm.vision.sources import SCHEMAS, SOURCE_KINDS, folder_kind

START, END = "<!-- parts-table:start -->", "<!-- parts-table:end -->"
REGENERATE = "vlm parts --write README.md"
EXAMPLE_SIZES = ((40, 96), (80, 48))  # (height, width) of the images the high-res table counts for
MARKS = {"LlavaForConditionalGeneration": "L", "LlavaNextForConditionalGeneration": "N"}  # export targets
WORKS, REFUSED = "✓", "✗"


def _natural(key: str) -> tuple:
    """``resampler16`` before ``resampler144``: digit runs compare as numbers."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", key))


MODES = sorted(HIGH_RES.keys(), key=lambda key: (key != "none", key))  # the single image first
PROJECTOR_KEYS = sorted(PROJECTORS.keys(), key=_natural)


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


def _code(keys) -> str:
    return ", ".join(f"`{k}`" for k in keys)


def registries() -> str:
    """The registries the other tables don't show."""
    rows = [
        ["chat template", _code(CHAT_TEMPLATES.keys())],
        ["export target", _code(HF_TARGETS.keys())],
        ["tiny backbone (`$VLM_CACHE`)", _code(TINY_BACKBONES.keys())],
    ]
    return _table(["registry", "members"], rows)


def source_kinds() -> str:
    rows = []
    for key in SOURCE_KINDS:
        kind = SOURCE_KINDS.get(key)
        named = [f"`{key}:NAME`", f"`{key}:NAME@CHECKPOINT`"] if kind.named else []
        prefixed = [f"`{key}:{schema}:…`" for schema in SCHEMAS] if kind.named else []
        rows.append([f"`{key}`", kind.marker, ", ".join(named + prefixed) or "—", str(kind.priority)])
    return _table(["source kind", "a folder holding", "named as", "priority (lowest wins)"], rows)


def _source_kind(vision: str) -> str:
    """The source kind a plain `BuildSpec.vision` reads as (each member's, for a fused "a+b")."""
    return " + ".join(f"`{folder_kind(resolve_part(part))}`" for part in vision.split("+"))


def encoders() -> str:
    """One row per vision family, measured on its first example (ENCODER_EXAMPLES)."""
    rows, seen = [], set()
    for label, spec in ENCODER_EXAMPLES.items():
        config = config_of(Combination(label, "linear", "none"))
        family = config.vision_config.model_type
        if family in seen or spec.get("s2_scales") or spec.get("vision_feature_select_strategy") == "full":
            continue
        seen.add(family)
        encoder = encoder_class(config)
        grid_rows, grid_cols = token_grid(config)
        rows.append([f"`{family}`", f"`{encoder.__name__}`", _source_kind(spec["vision"]), label,
                     f"{config.image_size} px → {grid_rows}×{grid_cols}", str(encoder.num_prefix_tokens(config)),
                     str(encoder.out_channels(config))])
    header = ["`model_type`", "encoder", "source kind", "tiny example", "grid", "prefix tokens", "channels"]
    return _table(header, rows)


def token_rule(key: str) -> str:
    """How many tokens the projector emits for an r×c grid of N tokens, read off its `num_tokens`."""
    projector = PROJECTORS.get(key)
    grids = [(8, 8), (7, 5), (3, 3), (1, 2)]
    counts = [projector.num_tokens(r * c, (r, c)) for r, c in grids]
    if counts == [r * c for r, c in grids]:
        return "N"
    if len(set(counts)) == 1:
        return f"{counts[0]}"
    if counts == [math.ceil(r / 2) * math.ceil(c / 2) for r, c in grids]:
        return "⌈r/2⌉·⌈c/2⌉"
    raise ValueError(f"no token rule describes projector {key!r} ({counts} for grids {grids}): add one to token_rule")


def projectors() -> str:
    rows = []
    for key in PROJECTOR_KEYS:
        projector = PROJECTORS.get(key)
        spatial = "yes (no prefix tokens)" if issubclass(projector, GridProjector) else "no"
        rows.append([f"`{key}`", f"`{projector.__name__}`", token_rule(key), spatial])
    return _table(["projector", "class", "tokens out (N = r×c in)", "needs the grid"], rows)


def _summary(key: str) -> str:
    """The first line of the strategy module's docstring, without its ``high_res="key"``: lead."""
    doc = sys.modules[HIGH_RES.get(key).__module__].__doc__ or ""
    return doc.strip().splitlines()[0].split(": ", 1)[-1].replace("``", "`")


def high_res() -> str:
    rows = []
    for key in MODES:
        config = config_of(Combination("tiny-clip", "mlp2x_gelu", key))
        layout = image_layout(config)
        strategy = layout.strategy
        processor = strategy.image_processor({}, "pad")
        tiles = ", ".join(str(layout.tile_count(s)) for s in EXAMPLE_SIZES)
        tokens = ", ".join(str(layout.num_tokens(s)) for s in EXAMPLE_SIZES)
        text = strategy.placeholder(EXAMPLE_SIZES[0], IMAGE_TOKEN).replace(IMAGE_TOKEN, "")
        rows.append([f"`{key}`", _summary(key), f"`{type(processor).__name__}`", tiles, tokens,
                     f"`{text}`" if text else "—", "yes" if strategy.uses_newline else "no"])
    sizes = " and ".join(f"{h}×{w}" for h, w in EXAMPLE_SIZES)
    intro = (f"Tiles and tokens for images of {sizes} px (height×width) with `tiny-clip` ({layout.tile_size} px "
             f"tiles, {layout.tile_tokens} tokens each, `max_tiles={config.max_tiles}`):")
    header = ["`high_res`", "what", "image processor", "tiles", "tokens", "text tags (first image)", "row-end embedding"]
    return intro + "\n\n" + _table(header, rows)


def _cell(encoder: str, projector: str) -> str:
    marks = []
    for key in MODES:
        result = verdict(Combination(encoder, projector, key))
        marks.append(REFUSED if not result.works else MARKS[result.export] if result.export != VLM_FORMAT else WORKS)
    return " ".join(marks)


def _merge(keys: list[str], cells) -> list[tuple[list[str], tuple[str, ...]]]:
    """Keys whose ``cells(key)`` are identical, grouped in first-seen order, with those cells."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for key in keys:
        groups.setdefault(tuple(cells(key)), []).append(key)
    return [(members, shared) for shared, members in groups.items()]


def compatibility() -> str:
    """Encoder examples x projectors, identical rows and identical columns merged."""
    if missing := set(HF_TARGETS.keys()) - set(MARKS):
        raise ValueError(f"export targets without a mark in vlm.parts_table.MARKS: {sorted(missing)}")
    cell = {(e, p): _cell(e, p) for e in ENCODER_EXAMPLES for p in PROJECTOR_KEYS}
    columns = [members for members, _ in _merge(PROJECTOR_KEYS, lambda p: [cell[e, p] for e in ENCODER_EXAMPLES])]
    rows = _merge(list(ENCODER_EXAMPLES), lambda e: [cell[e, members[0]] for members in columns])
    exports = ", ".join(f"{mark} also exports as `{target}`" for target, mark in MARKS.items())
    legend = (f"Each cell is {' · '.join(f'`{k}`' for k in MODES)}: {WORKS} builds, trains and generates (vlm format), "
              f"{exports}, {REFUSED} refused with an error that says why. `tests/test_parts_matrix.py` builds and runs "
              "each (keys that only re-size another key's class, on three encoders).")
    header = ["encoder example \\ projector", *(_code(members) for members in columns)]
    return legend + "\n\n" + _table(header, [["; ".join(members), *cells] for members, cells in rows])


def render() -> str:
    sections = [
        ("Vision encoders", encoders()), ("Where encoders come from (`BuildSpec.vision`)", source_kinds()),
        ("Projectors", projectors()), ("High resolution", high_res()), ("What works with what", compatibility()),
        ("Other registries", registries()),
    ]
    body = "\n\n".join(f"### {title}\n\n{text}" for title, text in sections)
    return f"{START}\n<!-- generated by `{REGENERATE}`; edit vlm/parts_table.py, not this -->\n\n{body}\n\n{END}"


def _split(text: str, path: Path) -> tuple[str, str, str]:
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise ValueError(f"{path} needs one {START} ... {END} block for the parts table")
    head, rest = text.split(START)
    current, tail = rest.split(END)
    return head, START + current + END, tail


def readme_block(path: str | Path) -> str:
    """The parts block the README at ``path`` holds now, markers included."""
    return _split(Path(path).read_text(), Path(path))[1]


def write(path: str | Path) -> bool:
    """Replace the README's parts block with the generated one; True when it changed."""
    path = Path(path)
    head, current, tail = _split(path.read_text(), path)
    fresh = render()
    path.write_text(head + fresh + tail)
    return current != fresh


def run(args: argparse.Namespace) -> int:
    """`vlm parts [--write README | --check README]` (arguments in `vlm.cli`)."""
    if args.check:
        if readme_block(args.check) != render():
            print(f"{args.check}: the parts table is stale; regenerate it with `{REGENERATE}`", file=sys.stderr)
            return 1
        print(f"{args.check}: the parts table is current")
        return 0
    if args.write:
        print(f"{args.write}: parts table {'updated' if write(args.write) else 'already current'}")
        return 0
    print(render())
    return 0


if __name__ == "__main__":
    from vlm.cli import main

    sys.exit(main(["parts", *sys.argv[1:]]))
