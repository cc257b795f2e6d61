"""Dataset mixtures from YAML (LLaVA-NeXT style): a deterministic, seeded, map-style concatenation.

    seed: 0                      # optional (0)
    size: 100000                 # optional: weights become shares of exactly this many samples
    image_root: images/          # optional default for every entry (else the YAML file's folder)
    shuffle: false               # optional: interleave the parts (seeded); samplers shuffle anyway
    datasets:
      - path: llava_v1_5_mix665k.json     # `json_path` also accepted; relative to this file
        image_root: .
        sampling: all                     # all | first:N | end:N | random:N; N a count or "20%"
        weight: 1.0                       # repeats: 2 = twice, 0.5 = a seeded random half
        format: llava                     # llava | hf; by default .json/.jsonl are llava, else hf

``sampling`` (``sampling_strategy`` also accepted) picks a subset of a source; ``weight`` then
repeats it (whole copies plus a seeded random remainder, drawn without replacement).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from vlm.data.errors import BadSampleLog
from vlm.data.example import Example
from vlm.data.hf_local import HFLocalDataset
from vlm.data.registry import DATA_SOURCES, require_files
from vlm.data.sources import LlavaJsonDataset, RecordDataset


class MixtureDataset:
    """Map-style: item ``i`` is ``parts[p][j]`` for the ``(p, j)`` the mixture fixed at construction."""

    def __init__(
        self, parts: list[RecordDataset], indices: list[np.ndarray], shuffle_seed: int | None = None
    ):
        if len(parts) != len(indices):
            raise ValueError(f"{len(parts)} parts but {len(indices)} index arrays")
        self.parts = parts
        self._part = np.concatenate([np.full(len(ix), p, dtype=np.int64) for p, ix in enumerate(indices)])
        self._local = np.concatenate([np.asarray(ix, dtype=np.int64) for ix in indices])
        if shuffle_seed is not None:
            order = np.random.default_rng(shuffle_seed).permutation(len(self._part))
            self._part, self._local = self._part[order], self._local[order]

    def __len__(self) -> int:
        return len(self._part)

    def __getitem__(self, index: int) -> Example | None:
        return self.parts[self._part[index]][int(self._local[index])]

    def lengths(self) -> list[int]:
        return self._gather(lambda part: part.lengths())

    def modalities(self) -> list[bool]:
        return [bool(flag) for flag in self._gather(lambda part: part.modalities())]

    def modality_lengths(self) -> tuple[list[int], list[bool]]:
        return self.lengths(), self.modalities()

    def counts(self) -> list[int]:
        """Samples drawn from each part, in the order of ``parts``."""
        return np.bincount(self._part, minlength=len(self.parts)).tolist()

    def _gather(self, stat) -> list:
        per_part = [np.asarray(stat(part)) for part in self.parts]
        out = np.zeros(len(self), dtype=per_part[0].dtype if per_part else np.int64)
        for p, values in enumerate(per_part):
            mask = self._part == p
            out[mask] = values[self._local[mask]]
        return out.tolist()


def load_mixture(
    path: str | Path, log: BadSampleLog | None = None, seed: int | None = None
) -> MixtureDataset:
    """The `MixtureDataset` a YAML file describes; paths in it resolve relative to the file."""
    path = Path(path)
    spec = yaml.safe_load(path.read_text()) or {}
    entries = spec.get("datasets")
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{path}: needs a non-empty `datasets:` list")
    seed = int(spec.get("seed", 0)) if seed is None else seed
    default_root = path.parent / spec.get("image_root", ".")
    parts, subsets, weights = [], [], []
    for number, entry in enumerate(entries):
        part = open_entry(entry, path.parent, default_root, log)
        sampling = str(entry.get("sampling", entry.get("sampling_strategy", "all")))
        parts.append(part)
        subsets.append(select(sampling, len(part), np.random.default_rng([seed, number, 0])))
        weights.append(float(entry.get("weight", 1.0)))
    counts = _counts([len(s) for s in subsets], weights, spec.get("size"))
    indices = [
        repeat(subset, count, np.random.default_rng([seed, number, 1]))
        for number, (subset, count) in enumerate(zip(subsets, counts, strict=True))
    ]
    return MixtureDataset(parts, indices, shuffle_seed=seed if spec.get("shuffle") else None)


def open_entry(
    entry: dict[str, Any], base: Path, default_root: Path, log: BadSampleLog | None
) -> RecordDataset:
    """One ``datasets:`` entry as a dataset (LLaVA JSON/JSONL, or local `datasets` files)."""
    file = entry.get("path", entry.get("json_path"))
    if not file:
        raise ValueError(f"mixture entry {entry} has no `path`")
    file = base / file
    root = base / entry["image_root"] if entry.get("image_root") else default_root
    fmt = entry.get("format", "llava" if file.suffix in (".json", ".jsonl") else "hf")
    if fmt == "llava":
        return LlavaJsonDataset(file, root, log)
    if fmt == "hf":
        return HFLocalDataset(file, root, log, split=entry.get("split", "train"))
    raise ValueError(f"mixture entry {file}: unknown format {fmt!r} (llava | hf)")


def select(sampling: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``all``, ``first:N``, ``end:N`` or ``random:N`` of ``n`` (N a count or ``P%``)."""
    if sampling == "all":
        return np.arange(n)
    how, _, amount = sampling.partition(":")
    if amount.endswith("%"):
        count = math.ceil(float(amount[:-1]) * n / 100)  # LLaVA-NeXT rounds percentages up
    elif amount.isdigit():
        count = int(amount)
    else:
        raise ValueError(f"sampling {sampling!r}: expected all | first:N | end:N | random:N, N a count or P%")
    count = min(count, n)
    if how == "first":
        return np.arange(count)
    if how == "end":
        return np.arange(n - count, n)
    if how == "random":
        return np.sort(rng.choice(n, size=count, replace=False))
    raise ValueError(f"sampling {sampling!r}: unknown strategy {how!r} (first | end | random)")


def repeat(subset: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` indices: whole copies of ``subset`` plus a random part of it, without replacement."""
    if count and not len(subset):
        raise ValueError("cannot draw samples from an empty subset")
    whole, rest = divmod(count, len(subset)) if len(subset) else (0, 0)
    extra = np.sort(rng.choice(subset, size=rest, replace=False)) if rest else subset[:0]
    return np.concatenate([np.tile(subset, whole), extra])


def _counts(sizes: list[int], weights: list[float], total: Any) -> list[int]:
    """Samples per part: ``size * weight`` each, or shares of ``total`` (largest remainders, exact sum)."""
    if any(w < 0 for w in weights) or (total is not None and not sum(weights)):
        raise ValueError(f"weights must be >= 0 (and not all 0 with `size`), got {weights}")
    if total is None:
        return [round(size * w) for size, w in zip(sizes, weights, strict=True)]
    shares = [int(total) * w / sum(weights) for w in weights]
    counts = [math.floor(s) for s in shares]
    by_remainder = sorted(range(len(shares)), key=lambda i: counts[i] - shares[i])
    for i in by_remainder[: int(total) - sum(counts)]:
        counts[i] += 1
    return counts


@DATA_SOURCES.register("mixture")
def _open_mixture(cfg: Any, seed: int) -> MixtureDataset:
    require_files(cfg)
    return load_mixture(cfg.path, seed=seed)
