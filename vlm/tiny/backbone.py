"""The tiny backbones' registry and cache: each member writes a complete checkpoint folder (config,
safetensors weights, tokenizer or image processor) so the rest of vlm loads it through the same
``from_pretrained`` path a real checkpoint takes. ``tiny_path`` builds a folder once and caches it;
`tiny_backbone` registers a factory here and as a named part of `vlm.hub`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import torch
from transformers import PreTrainedConfig

from vlm.cache import cache_root, cached_folder
from vlm.hub import PARTS
from vlm.registry import Registry

# Bump whenever a factory's output changes, so stale cached folders are not reused.
FACTORY_VERSION = 7
SEED = 0

Factory = Callable[[Path], None]
TINY_BACKBONES: Registry[Factory] = Registry("tiny backbone", package="vlm.tiny.backbones")
_SELF_TRAINED: set[str] = set()


def tiny_backbone(key: str, self_trained: bool = False) -> Callable[[Factory], Factory]:
    """Register a factory ``f(out_folder)`` as tiny backbone ``key`` and as the named part ``key``.
    ``self_trained``: it trains on the shapes world when first built (minutes, once per cache)."""

    def add(factory: Factory) -> Factory:
        TINY_BACKBONES.register(key, factory)
        PARTS.register(key, functools.partial(tiny_path, key))
        if self_trained:
            _SELF_TRAINED.add(key)
        return factory

    return add


def self_trained() -> list[str]:
    """The keys whose factories train on the shapes world."""
    TINY_BACKBONES.keys()
    return sorted(_SELF_TRAINED)


def tiny_path(key: str) -> Path:
    """The folder of tiny backbone ``key``, built on first use (atomically, safe across processes)."""
    factory = TINY_BACKBONES.get(key)
    return cached_folder(cache_root() / "tiny" / f"{key}-v{FACTORY_VERSION}", factory)


def save_model(config: PreTrainedConfig, auto: type, out: Path) -> None:
    """A model of ``config`` with seeded random weights, saved by ``auto`` (an Auto class) to ``out``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = auto.from_config(config)
    model.save_pretrained(out)
