"""Hugging Face `datasets` from local files (parquet, arrow, ``save_to_disk`` folders, imagefolder).

Rows have LLaVA's layout: ``conversations`` (a list of ``{"from", "value"}``, or that list as a
JSON string) and an ``image`` or ``images`` column holding encoded images (the `datasets.Image`
feature or raw bytes) or paths relative to the image root. Rows are read as raw Arrow, so images
are decoded only by `vlm.data.images` (size check first, full decode, RGB), never by `datasets`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from PIL import Image

from vlm.data.errors import BadSample, BadSampleKind, BadSampleLog
from vlm.data.example import Example
from vlm.data.images import check_image, image_from_bytes, load_image
from vlm.data.registry import DATA_SOURCES, require_files
from vlm.data.sources import RecordDataset, text_length

BUILDERS = {".parquet": "parquet", ".arrow": "arrow", ".json": "json", ".jsonl": "json"}


class HFLocalDataset(RecordDataset):
    """Map-style over a local `datasets` split; same `Example`s and bad-sample kinds as `LlavaJsonDataset`.

    ``path_or_files``: a folder (``save_to_disk`` output, parquet/arrow files, or an imagefolder with
    ``metadata.jsonl``), one file or a list of files. ``image_root`` (for path cells) defaults to
    that folder, or the first file's folder.
    """

    def __init__(
        self,
        path_or_files: str | Path | list[str | Path],
        image_root: str | Path | None = None,
        log: BadSampleLog | None = None,
        split: str = "train",
        cache_dir: str | Path | None = None,
    ):
        files = [Path(p) for p in path_or_files] if isinstance(path_or_files, list) else [Path(path_or_files)]
        self.dataset = load_local(files, split, cache_dir)
        self.image_root = (
            Path(image_root) if image_root else (files[0] if files[0].is_dir() else files[0].parent)
        )
        self.source, self.log = str(files[0]), log
        self._rows = self.dataset.with_format("arrow")
        self._stats: tuple[list[int], list[bool]] | None = None

    def __len__(self) -> int:
        return len(self.dataset)

    def record(self, index: int) -> dict[str, Any]:
        record = self._rows[index].to_pylist()[0]
        if isinstance(record.get("conversations"), str):
            try:
                record["conversations"] = json.loads(record["conversations"])
            except ValueError as err:
                raise BadSample(
                    BadSampleKind.MALFORMED_RECORD, self.sample_id(index, record), str(err)
                ) from None
        return record

    def open_image(self, ref: Any, sample_id: str) -> Image.Image:
        if isinstance(ref, dict):  # the datasets.Image feature's storage: {"bytes", "path"}
            ref = ref.get("bytes") or ref.get("path")
        if isinstance(ref, Image.Image):
            return check_image(ref, sample_id)
        if isinstance(ref, (bytes, bytearray)):
            return image_from_bytes(bytes(ref), sample_id)
        if isinstance(ref, str) and Path(ref).is_absolute():  # imagefolder stores absolute paths
            ref = _relative_to(ref, self.image_root)
        return load_image(ref, self.image_root, sample_id)

    def lengths(self) -> list[int]:
        return self._modality_stats()[0]

    def modalities(self) -> list[bool]:
        return self._modality_stats()[1]

    def _modality_stats(self) -> tuple[list[int], list[bool]]:
        """Read column by column in batches; image cells are only tested for presence, never decoded."""
        if self._stats is None:
            import pyarrow.compute as pc

            lengths: list[int] = []
            has_image: list[bool] = []
            for batch in self._rows.iter(batch_size=4096):
                for turns in batch.column("conversations").to_pylist():
                    lengths.append(text_length(_json_or_none(turns) if isinstance(turns, str) else turns))
                flags = pc.is_valid(batch.column("image")) if "image" in batch.column_names else None
                if "images" in batch.column_names:
                    many = pc.fill_null(pc.greater(pc.list_value_length(batch.column("images")), 0), False)
                    flags = many if flags is None else pc.or_(many, pc.fill_null(flags, False))
                has_image += flags.to_pylist() if flags is not None else [False] * batch.num_rows
            self._stats = lengths, has_image
        return self._stats


def hf_local(
    path_or_files: str | Path | list[str | Path],
    image_root: str | Path | None = None,
    log: BadSampleLog | None = None,
    **kwargs: Any,
) -> Iterator[Example]:
    """Every good `Example` of a local `datasets` source; bad samples are counted in ``log`` and skipped."""
    return HFLocalDataset(
        path_or_files, image_root, log if log is not None else BadSampleLog(), **kwargs
    ).examples()


def load_local(files: list[Path], split: str = "train", cache_dir: str | Path | None = None):
    """A `datasets.Dataset` from local files only (works with ``HF_DATASETS_OFFLINE=1``)."""
    import datasets

    cache = str(cache_dir) if cache_dir else None
    if len(files) == 1 and files[0].is_dir():
        folder = files[0]
        if (folder / "state.json").exists() or (folder / "dataset_dict.json").exists():
            loaded = datasets.load_from_disk(str(folder))
            return loaded[split] if isinstance(loaded, datasets.DatasetDict) else loaded
        found = [p for suffix in (".parquet", ".arrow") for p in sorted(folder.rglob(f"*{suffix}"))]
        if not found:
            return datasets.load_dataset("imagefolder", data_dir=str(folder), split=split, cache_dir=cache)
        files = [p for p in found if p.suffix == found[0].suffix]
    builders = {BUILDERS.get(p.suffix) for p in files}
    if len(builders) != 1 or None in builders:
        raise ValueError(f"cannot tell one format for {[str(p) for p in files]} (known: {sorted(BUILDERS)})")
    data_files = [str(p) for p in files]
    return datasets.load_dataset(builders.pop(), data_files=data_files, split=split, cache_dir=cache)


def _relative_to(path: str, root: Path) -> str:
    """``path`` relative to ``root`` (``..`` parts kept, so a path outside is refused as an escape)."""
    return os.path.relpath(Path(path).resolve(), Path(root).resolve())


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


@DATA_SOURCES.register("hf_local")
def _open_hf_local(cfg: Any, seed: int) -> HFLocalDataset:
    require_files(cfg)
    return HFLocalDataset(cfg.path, cfg.image_root)
