"""The README's parts tables, rendered from the registries and `vlm.parts.matrix`, so they cannot go stale.

``vlm parts`` prints them; ``--write README.md`` replaces the text
between the `START` and `END` markers; ``--check README.md`` exits 1 when that text differs.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

from vlm.export import HF_TARGETS
from vlm.highres.base import HIGH_RES
from vlm.hub import PARTS, resolve_part
from vlm.layout import image_layout, token_grid
from vlm.parts import registries as registry_table
from vlm.parts.matrix import ENCODER_EXAMPLES, VLM_FORMAT, Combination, config_of, verdict
from vlm.projectors.base import PROJECTORS
from vlm.templates import CHAT_TEMPLATES, IMAGE_TOKEN
from vlm.vision.encoder import encoder_class
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
        ["named part (`$VLM_CACHE`)", _code(PARTS.keys())],
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


GRIDS = {"24×24 (CLIP-L/336)": (24, 24), "27×27 (SigLIP-384)": (27, 27)}  # tokens in, read off `num_tokens`


def projectors() -> str:
    """One row per projector class; keys of a subclass that only re-sizes it (``resampler16``) share its row."""
    families: dict[type, list[str]] = {}
    for key in PROJECTOR_KEYS:
        projector = PROJECTORS.get(key)
        base = projector.__bases__[0]
        families.setdefault(base if base in _registered_classes() else projector, []).append(key)
    rows = []
    for projector, keys in families.items():
        classes = [PROJECTORS.get(k) for k in keys]
        counts = [", ".join(str(c.num_tokens(r * w, (r, w))) for c in classes) for r, w in GRIDS.values()]
        spatial = "yes (no prefix tokens)" if projector.needs_grid else "no"
        rows.append([_code(keys), f"`{projector.__name__}`", *counts, spatial])
    return _table(["projector", "class", *(f"tokens for {g}" for g in GRIDS), "needs the grid"], rows)


def _registered_classes() -> set[type]:
    return {PROJECTORS.get(k) for k in PROJECTOR_KEYS}


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
        raise ValueError(f"export targets without a mark in vlm.parts.table.MARKS: {sorted(missing)}")
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
    """The README's block: encoders and projectors."""
    sections = [("Vision encoders", encoders()), ("Projectors", projectors())]
    body = "\n\n".join(f"### {title}\n\n{text}" for title, text in sections)
    more = ("Which encoder works with which projector and high-resolution strategy, where encoders come from, "
            "and the other registries: `docs/parts.md`.")
    return f"{START}\n<!-- generated by `{REGENERATE}`; edit vlm/parts/table.py, not this -->\n\n{body}\n\n{more}\n\n{END}"


MORE_START, MORE_END = "<!-- parts-more:start -->", "<!-- parts-more:end -->"


def render_more() -> str:
    """docs/parts.md's block: what works with what, encoder sources, high resolution, the other registries."""
    sections = [("What works with what", compatibility()), ("Where encoders come from (`BuildSpec.vision`)", source_kinds()),
                ("High resolution", high_res()), ("Other registries", registries())]
    body = "\n\n".join(f"## {title}\n\n{text}" for title, text in sections)
    note = "<!-- generated by `vlm parts --write docs/parts.md`; edit vlm/parts/table.py, not this -->"
    return f"{MORE_START}\n{note}\n\n{body}\n\n{MORE_END}"


def _split(text: str, path: Path, start: str = START, end: str = END) -> tuple[str, str, str]:
    if text.count(start) != 1 or text.count(end) != 1 or text.index(start) > text.index(end):
        raise ValueError(f"{path} needs one {start} ... {end} block")
    head, rest = text.split(start)
    current, tail = rest.split(end)
    return head, start + current + end, tail


def blocks(text: str, path: Path) -> dict[tuple[str, str], Callable[[], str]]:
    """The generated blocks ``text`` holds: (start, end) markers -> the function that renders the block."""
    known = {(START, END): render, (MORE_START, MORE_END): render_more,
             (registry_table.START, registry_table.END): registry_table.render}
    found = {markers: fn for markers, fn in known.items() if markers[0] in text}
    if not found:
        raise ValueError(f"{path} holds no generated block (none of {', '.join(start for start, _ in known)})")
    return found


def readme_block(path: str | Path) -> str:
    """The parts block the README at ``path`` holds now, markers included."""
    return _split(Path(path).read_text(), Path(path))[1]


def stale(path: str | Path) -> list[str]:
    """The start markers of the generated blocks in ``path`` that differ from what the code renders now."""
    text = Path(path).read_text()
    return [start for (start, end), fn in blocks(text, Path(path)).items()
            if _split(text, Path(path), start, end)[1] != fn()]


def write(path: str | Path) -> bool:
    """Replace every generated block ``path`` holds with the current one; True when any changed."""
    path = Path(path)
    text = original = path.read_text()
    for (start, end), fn in blocks(text, path).items():
        head, _, tail = _split(text, path, start, end)
        text = head + fn() + tail
    path.write_text(text)
    return text != original
