"""`DATA_SOURCES` and `PREFERENCE_SOURCES`: how a stage's `DataConfig` becomes a map-style source.

A conversation source yields `Example`s (raising `BadSample` for a bad item, which the training
dataset counts and skips) and offers ``modality_lengths()`` for length-grouped sampling without
loading images. A preference source's ``get(i)`` gives ``(record, images)`` with ``prompt``,
``chosen`` and ``rejected``. Each member is registered in its own module of `vlm.data` (or by a
plugin, e.g. the shapes world's ``synthetic``); the factory receives the `DataConfig` and the seed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from vlm.registry import Registry

Factory = Callable[[Any, int], Any]
DATA_SOURCES: Registry[Factory] = Registry("data source", package="vlm.data")
PREFERENCE_SOURCES: Registry[Factory] = Registry("preference data source", package="vlm.data")


def open_source(cfg: Any, seed: int = 0) -> Any:
    """The conversation source ``cfg.source`` names (a source with local files fails at once when they are missing)."""
    return DATA_SOURCES.get(cfg.source)(cfg, seed)


def open_preferences(cfg: Any, seed: int = 0) -> Any:
    """The preference source ``cfg.source`` names."""
    return PREFERENCE_SOURCES.get(cfg.source)(cfg, seed)


def require_files(cfg: Any) -> None:
    """Raise a `FileNotFoundError` that says what to do when ``cfg.path`` or ``cfg.image_root`` is missing."""
    missing = [p for p in (cfg.path, cfg.image_root) if p is not None and not Path(p).exists()]
    if cfg.path is None or missing:
        raise FileNotFoundError(
            f"data source {cfg.source!r} needs local files; missing: {missing or ['path (not set)']}. "
            "Nothing is downloaded at run time: prepare the corpus as data/README.md describes "
            "and pass --stages.<name>.data.path / .image_root (`vlm data prepare ROOT` checks a download and writes the presets' mixture files)."
        )
