"""LLaVA-format conversation data: JSON (a list) or JSONL, with images under an image root.

`RecordDataset` is the map-style base every source shares (this file's `LlavaJsonDataset`,
`vlm.data.hf_local.HFLocalDataset`): a record -> validated messages -> `Example` with its images
loaded lazily, in ``dataset[i]``. Without a log, a bad sample raises `BadSample` (what
`vlm.data.dataset.EncodedDataset` wants: DataLoader workers hand it to the main process); with a
`BadSampleLog`, it is counted and ``dataset[i]`` is None (a strict log raises the first).
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from vlm.data.errors import BadSample, BadSampleKind, BadSampleLog
from vlm.data.example import Example
from vlm.data.images import load_image
from vlm.data.registry import DATA_SOURCES, require_files
from vlm.templates import IMAGE_TOKEN

ROLES = {"human": "user", "gpt": "assistant", "system": "system"}
_MARKER = re.compile(re.escape(IMAGE_TOKEN) + r"\n?")


def conversation_to_messages(conversations: Any, sample_id: str) -> list[dict[str, Any]]:
    """LLaVA ``conversations`` -> chat messages; ``<image>`` markers (and the newline after) become image items.

    Turns must alternate human/gpt, starting with human (one leading system turn allowed), end with
    gpt, and none may be empty; otherwise `BadSample(BAD_CONVERSATION)`.
    """
    if not isinstance(conversations, list) or not conversations:
        raise BadSample(BadSampleKind.BAD_CONVERSATION, sample_id, "no conversation turns")
    turns = conversations[1:] if _role(conversations[0], sample_id) == "system" else conversations
    for i, turn in enumerate(turns):
        expected = "user" if i % 2 == 0 else "assistant"
        if _role(turn, sample_id) != expected:
            raise BadSample(
                BadSampleKind.BAD_CONVERSATION,
                sample_id,
                f"turn {i} is {turn.get('from')!r}, expected {expected}",
            )
    if not turns or len(turns) % 2:
        raise BadSample(
            BadSampleKind.BAD_CONVERSATION, sample_id, "the conversation must end with a gpt turn"
        )
    return [{"role": _role(turn, sample_id), "content": _content(turn["value"])} for turn in conversations]


def _role(turn: Any, sample_id: str) -> str:
    if not isinstance(turn, dict) or turn.get("from") not in ROLES or not isinstance(turn.get("value"), str):
        raise BadSample(BadSampleKind.BAD_CONVERSATION, sample_id, f"malformed turn {str(turn)[:80]!r}")
    if not turn["value"].strip():
        raise BadSample(BadSampleKind.BAD_CONVERSATION, sample_id, f"empty {turn['from']} turn")
    return ROLES[turn["from"]]


def _content(value: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for i, text in enumerate(_MARKER.split(value)):
        if i:
            items.append({"type": "image"})
        if text:
            items.append({"type": "text", "text": text})
    return items


def count_images(messages: list[dict[str, Any]]) -> int:
    return sum(item["type"] == "image" for m in messages for item in m["content"])


def record_images(record: dict[str, Any]) -> list[Any]:
    """The record's image references (``images`` if non-empty, else ``image``), as a list."""
    images = record.get("images") or record.get("image")
    if not images:  # absent, None, "" or []: a text-only sample
        return []
    return list(images) if isinstance(images, (list, tuple)) else [images]


def record_messages(record: dict[str, Any], sample_id: str, n_images: int) -> list[dict[str, Any]]:
    """Validated messages with exactly ``n_images`` image items.

    A record with images but no ``<image>`` marker gets one marker at the start of its first human
    turn, as LLaVA's training code does; any other count mismatch is `IMAGE_COUNT_MISMATCH`.
    """
    messages = conversation_to_messages(record.get("conversations"), sample_id)
    markers = count_images(messages)
    if markers == 0 and n_images:
        messages[messages[0]["role"] == "system"]["content"].insert(0, {"type": "image"})
        markers = 1
    if markers != n_images:
        raise BadSample(
            BadSampleKind.IMAGE_COUNT_MISMATCH, sample_id, f"{markers} <image> markers but {n_images} images"
        )
    return messages


def text_length(conversations: Any) -> int:
    """Whitespace words over all turns: LLaVA's cheap length estimate for length grouping."""
    if not isinstance(conversations, list):
        return 0
    return sum(len(str(t.get("value", "")).split()) for t in conversations if isinstance(t, dict))


class RecordDataset(ABC):
    """Map-style base: subclasses give ``__len__``, `record`, `open_image` and the cheap stats."""

    source: str = ""
    log: BadSampleLog | None = None

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def record(self, index: int) -> dict[str, Any]:
        """The raw record at ``index``; `BadSample(MALFORMED_RECORD)` if it is not a JSON object."""
        ...

    @abstractmethod
    def open_image(self, ref: Any, sample_id: str) -> Image.Image: ...

    @abstractmethod
    def lengths(self) -> list[int]:
        """Per-sample text length estimates (words), read without loading any image."""
        ...

    @abstractmethod
    def modalities(self) -> list[bool]:
        """Per-sample has-image flags, read without loading any image."""
        ...

    def modality_lengths(self) -> tuple[list[int], list[bool]]:
        return self.lengths(), self.modalities()

    def sample_id(self, index: int, record: dict[str, Any]) -> str:
        return str(record["id"]) if record.get("id") is not None else f"{Path(self.source).name}:{index}"

    def parse(self, index: int) -> tuple[str, list[dict[str, Any]], list[Any]]:
        """``(sample_id, messages, image refs)``, validated, without touching the images."""
        record = self.record(index)
        sample_id = self.sample_id(index, record)
        images = record_images(record)
        return sample_id, record_messages(record, sample_id, len(images)), images

    def example(self, index: int) -> Example:
        """The `Example` at ``index`` with its images loaded, or `BadSample`."""
        sample_id, messages, refs = self.parse(index)
        images = [self.open_image(ref, sample_id) for ref in refs]
        return Example(sample_id, messages, images, source=self.source)

    def __getitem__(self, index: int) -> Example | None:
        try:
            return self.example(index)
        except BadSample as bad:
            if self.log is None:
                raise
            self.log.record(bad)
            return None

    def examples(self) -> Iterator[Example]:
        """Every good `Example` in order; bad ones are counted in ``self.log`` (required) and skipped."""
        if self.log is None:
            raise ValueError("examples() skips bad samples: give the dataset a BadSampleLog")
        for index in range(len(self)):
            example = self[index]
            if example is not None:
                yield example


class LlavaJsonDataset(RecordDataset):
    """LLaVA JSON (a list of records) or JSONL (one record a line), images relative to ``image_root``.

    Records are kept serialized in one buffer (not as a million Python dicts), so forked DataLoader
    workers share them instead of copying them page by page. A malformed JSONL line stays a record
    that is bad with `MALFORMED_RECORD`, so indices stay stable and the rest still loads.
    """

    def __init__(self, path: str | Path, image_root: str | Path, log: BadSampleLog | None = None):
        self.path, self.image_root, self.log = Path(path), Path(image_root), log
        self.source = str(self.path)
        lines, self._lengths, self._has_image = _read_lines(self.path)
        self._offsets = np.cumsum([0] + [len(line) for line, _ in lines], dtype=np.int64)
        self._line_numbers = np.array([number for _, number in lines], dtype=np.int64)
        self._buffer = b"".join(line for line, _ in lines)

    def __len__(self) -> int:
        return len(self._line_numbers)

    def record(self, index: int) -> dict[str, Any]:
        start, end = self._offsets[index], self._offsets[index + 1]
        try:
            record = json.loads(self._buffer[start:end])
        except ValueError as err:
            record = err
        if not isinstance(record, dict):
            where = f"{self.path.name}:{self._line_numbers[index]}"
            raise BadSample(BadSampleKind.MALFORMED_RECORD, where, f"not a JSON object: {record}")
        return record

    def open_image(self, ref: Any, sample_id: str) -> Image.Image:
        return load_image(ref, self.image_root, sample_id)

    def lengths(self) -> list[int]:
        return self._lengths.tolist()

    def modalities(self) -> list[bool]:
        return self._has_image.tolist()


def llava_json(
    path: str | Path, image_root: str | Path, log: BadSampleLog | None = None
) -> Iterator[Example]:
    """Every good `Example` of a LLaVA JSON/JSONL file; bad samples are counted in ``log`` and skipped."""
    return LlavaJsonDataset(path, image_root, log if log is not None else BadSampleLog()).examples()


def _read_lines(path: Path) -> tuple[list[tuple[bytes, int]], np.ndarray, np.ndarray]:
    """``(serialized record, line number)`` pairs plus per-record lengths and has-image flags."""
    data = path.read_bytes()
    if path.suffix != ".jsonl" and data.lstrip()[:1] != b"{":  # a JSON list (JSONL starts with "{")
        records = json.loads(data)
        if not isinstance(records, list):
            raise ValueError(f"{path} must hold a JSON list of records")
        numbered = [(json.dumps(r, ensure_ascii=False).encode(), i) for i, r in enumerate(records)]
        parsed: list[Any] = records
    else:
        numbered = [(line, n) for n, line in enumerate(data.splitlines(), 1) if line.strip()]
        parsed = [_try_json(line) for line, _ in numbered]
    lengths = np.array(
        [text_length(r.get("conversations")) if isinstance(r, dict) else 0 for r in parsed], dtype=np.int64
    )
    has_image = np.array([isinstance(r, dict) and bool(record_images(r)) for r in parsed], dtype=bool)
    return numbered, lengths, has_image


def _try_json(line: bytes) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return None


@DATA_SOURCES.register("llava_json")
def _open_llava_json(cfg: Any, seed: int) -> LlavaJsonDataset:
    require_files(cfg)
    return LlavaJsonDataset(cfg.path, cfg.image_root or Path(cfg.path).parent)
