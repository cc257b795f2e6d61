"""Reading benchmark files as released: JSON, JSON lines, TSV and parquet (the lmms-eval layout), with
errors that name the file and what is missing."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from vlm.eval.task import ImageRef


def find_one(data: Path, patterns: Iterable[str], what: str) -> Path:
    """The single file under ``data`` (a file itself, or a folder searched non-recursively) matching the
    first pattern that matches anything; a clear error when none or several match."""
    data = Path(data)
    if not data.exists():
        raise FileNotFoundError(f"{what}: {data} does not exist")
    if data.is_file():
        return data
    patterns = list(patterns)
    for pattern in patterns:
        found = sorted(data.glob(pattern))
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            names = ", ".join(p.name for p in found)
            raise ValueError(f"{what}: several files match {pattern!r} in {data}: {names}; pass one file")
    raise FileNotFoundError(f"{what}: no file matching {' or '.join(patterns)} in {data}")


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None


def read_jsonl(path: Path) -> list[dict]:
    """JSON lines; a file holding one JSON list is accepted too (POPE's files are lines named .json)."""
    text = Path(path).read_text()
    if text.lstrip().startswith("["):
        return read_json(path)
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{n}: not valid JSON ({err})") from None
    return rows


def read_parquet(path: Path) -> list[dict]:
    """All rows of a parquet file (or of every ``*.parquet`` in a folder, in name order) as dicts."""
    import pyarrow.parquet as pq

    path = Path(path)
    files = sorted(path.glob("*.parquet")) if path.is_dir() else [path]
    if not files:
        raise FileNotFoundError(f"no .parquet files in {path}")
    return [row for f in files for row in pq.read_table(f).to_pylist()]


def require(row: dict, keys: Iterable[str], where: str) -> None:
    missing = [k for k in keys if k not in row]
    if missing:
        raise ValueError(f"{where}: missing field(s) {missing}; has {sorted(row)}")


def image_cell(cell: Any, root: Path | None = None) -> ImageRef:
    """An image column value: ``{"bytes": ..., "path": ...}`` (the `datasets.Image` feature), raw bytes,
    a base64 string (MMBench TSV) or a path relative to ``root``."""
    if isinstance(cell, dict) and cell.get("bytes") is not None:
        return ImageRef(data=cell["bytes"])
    if isinstance(cell, dict) and cell.get("path"):
        cell = cell["path"]
    if isinstance(cell, bytes | bytearray):
        return ImageRef(data=bytes(cell))
    if isinstance(cell, str) and root is not None:
        return ImageRef(path=cell, root=Path(root))
    if isinstance(cell, str):
        return ImageRef(data=base64.b64decode(cell))
    raise ValueError(f"cannot read an image from a {type(cell).__name__} cell")


def is_parquet(data: Path) -> bool:
    """A parquet file, or a folder holding parquet files (the lmms-eval layout)."""
    data = Path(data)
    return data.suffix == ".parquet" or (data.is_dir() and any(data.glob("*.parquet")))
