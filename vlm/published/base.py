"""The catalogue of published backbones (`published()`), their config-only part folders, the hub ids
each stands in for, and random-weight copies for rehearsals.

A member is a `Published` entry: the config written from the published hyperparameters, the hub ids
of the checkpoints with that shape, and the size the authors report. `shape_part` registers it in
`published()` and as the named part ``shape-KEY`` (`vlm.hub.PARTS`), whose folder is written once
into ``$VLM_CACHE/published/``.
"""

from __future__ import annotations

import functools
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer, GenerationConfig, PreTrainedConfig

from vlm.cache import cache_root, cached_folder
from vlm.hub import PARTS
from vlm.registry import import_package

PREFIX = "shape-"
FOLDER_VERSION = 1  # bump when a member's config changes, so stale cached folders are not reused
SOURCE_PREFIXES = ("open_clip:hf-hub:", "timm:hf-hub:")  # `vlm.vision.sources` forms that name a hub repo


@dataclass(frozen=True)
class Published:
    """A published backbone's shape. ``config()`` writes its config; ``processor()`` (vision towers) its
    image processor; ``hub_ids`` are the checkpoints with exactly this shape; ``parameters`` is the size
    the authors report (``reported`` says where), for comparison with the count of the config."""

    key: str
    kind: Literal["vision", "llm"]
    config: Callable[[], PreTrainedConfig]
    hub_ids: tuple[str, ...]
    parameters: float
    reported: str
    processor: Callable[[], object] | None = None

    @property
    def part(self) -> str:
        return PREFIX + self.key


_PUBLISHED: dict[str, Published] = {}  # part name (shape-KEY) -> entry


def published() -> dict[str, Published]:
    """Every member, by part name (``shape-KEY``); importing the package's modules registers them."""
    import_package("vlm.published")
    return _PUBLISHED


def shape_part(entry: Published) -> Published:
    """Register ``entry`` in `published()` and as the named part ``shape-KEY``."""
    if entry.part in _PUBLISHED:
        raise ValueError(f"published shape {entry.part!r} is already registered")
    _PUBLISHED[entry.part] = entry
    PARTS.register(entry.part, functools.partial(config_folder, entry.part))
    return entry


def config_folder(part: str) -> Path:
    """The config-only folder of ``part`` (written on first use): config.json, and a vision tower's
    preprocessor_config.json or an LLM's generation_config.json. No weights, no tokenizer."""
    entry = published()[part]

    def write(out: Path) -> None:
        entry.config().save_pretrained(out)
        if entry.processor is not None:
            entry.processor().save_pretrained(out)
        if entry.kind == "llm":
            GenerationConfig.from_model_config(entry.config()).save_pretrained(out)

    return cached_folder(cache_root() / "published" / f"{entry.key}-v{FOLDER_VERSION}", write)


def stand_in(ref: str) -> str | None:
    """The ``shape-KEY`` part standing in for a part argument naming a published checkpoint (a hub id,
    also in the ``open_clip:hf-hub:ID`` / ``timm:hf-hub:ID`` forms); None when no member has its shape."""
    hub_id = next((ref.removeprefix(p) for p in SOURCE_PREFIXES if ref.startswith(p)), ref)
    return next((part for part, entry in published().items() if hub_id in entry.hub_ids), None)


def materialize(part: str, out: Path, tokenizer_from: Path | None = None, seed: int = 0) -> Path:
    """A loadable folder of ``part``'s shape with seeded random weights (float32): the config folder's
    files plus weights, and for an LLM the tokenizer files of ``tokenizer_from`` (any tokenizer whose ids
    fit the vocabulary, e.g. a tiny one). For rehearsing the real-size path without the real weights."""
    entry = published()[part]
    folder = config_folder(part)
    config, ids = entry.config(), {}
    if tokenizer_from is not None:  # its special tokens replace the published ones
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_from)
        ids = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                   pad_token_id=tokenizer.pad_token_id)
        if max(i for i in [len(tokenizer), *ids.values()] if i is not None) > config.vocab_size:
            raise ValueError(f"the tokenizer of {tokenizer_from} ({len(tokenizer)} tokens) does not fit "
                             f"{part}'s vocabulary of {config.vocab_size}")
        config.update(ids)
    auto = AutoModelForCausalLM if entry.kind == "llm" else AutoModel
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = auto.from_config(config, dtype=torch.float32)
    model.save_pretrained(out)
    del model
    for path in folder.iterdir():
        if path.name not in ("config.json", "generation_config.json"):
            shutil.copy2(path, out / path.name)
    if entry.kind == "llm":
        (GenerationConfig(**ids) if ids else GenerationConfig.from_model_config(config)).save_pretrained(out)
    if tokenizer_from is not None:
        for path in Path(tokenizer_from).iterdir():
            if "token" in path.name or path.name == "chat_template.jinja":
                shutil.copy2(path, out / path.name)
    return out
