"""`DATA_SOURCES`: how a stage's `DataConfig` becomes a map-style source of `Example`s.

Every source raises `BadSample` for a bad item (the training dataset counts and skips it) and
offers ``modality_lengths()`` for length-grouped sampling without loading images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vlm.registry import Registry

DATA_SOURCES: Registry[Any] = Registry("data source")


def open_source(cfg: Any, seed: int = 0) -> Any:
    """The source ``cfg.source`` names, after checking that its files exist (so a preset fails at once)."""
    factory = DATA_SOURCES.get(cfg.source)
    if cfg.source != "synthetic":
        missing = [p for p in (cfg.path, cfg.image_root) if p is not None and not Path(p).exists()]
        if cfg.path is None or missing:
            raise FileNotFoundError(
                f"data source {cfg.source!r} needs local files; missing: {missing or ['path (not set)']}. "
                "Nothing is downloaded at run time: prepare the corpus as data/README.md describes "
                "(python data/prepare_llava.py) and pass --stages.<name>.data.path / .image_root."
            )
    return factory(cfg, seed)


@DATA_SOURCES.register("synthetic")
def _synthetic(cfg: Any, seed: int) -> Any:
    from vlm.data.synthetic_dataset import SyntheticDataset

    return SyntheticDataset(cfg.n_images, cfg.tasks, "train", cfg.image_size, cfg.first_image)


@DATA_SOURCES.register("llava_json")
def _llava_json(cfg: Any, seed: int) -> Any:
    from vlm.data.sources import LlavaJsonDataset

    return LlavaJsonDataset(cfg.path, cfg.image_root or Path(cfg.path).parent)


@DATA_SOURCES.register("hf_local")
def _hf_local(cfg: Any, seed: int) -> Any:
    from vlm.data.hf_local import HFLocalDataset

    return HFLocalDataset(cfg.path, cfg.image_root)


@DATA_SOURCES.register("mixture")
def _mixture(cfg: Any, seed: int) -> Any:
    from vlm.data.mixture import load_mixture

    return load_mixture(cfg.path, seed=seed)
