"""LLaVA-format conversation data: JSON (a list) or JSONL, with images under an image root."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from vlm.data.errors import BadSample, BadSampleKind
from vlm.data.example import Example
from vlm.data.images import load_image
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


class LlavaJsonDataset:
    """Map-style LLaVA data. ``dataset[i]`` is an `Example` or raises `BadSample` (images load lazily).

    A record with images but no ``<image>`` marker gets one marker at the start of its first human
    turn, as LLaVA's training code does. A malformed JSONL line becomes a record that raises
    `BadSample(MALFORMED_RECORD)` when read, so indices stay stable and the rest still loads.
    """

    def __init__(self, path: str | Path, image_root: str | Path):
        self.path, self.image_root = Path(path), Path(image_root)
        self.records = _read_records(self.path)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> Example:
        record = self.records[index]
        if isinstance(record, BadSample):
            raise record
        sample_id = str(record.get("id", f"{self.path.name}:{index}"))
        images = record.get("image", [])
        images = [images] if isinstance(images, str) else images
        messages = conversation_to_messages(record.get("conversations"), sample_id)
        markers = count_images(messages)
        if markers == 0 and images:
            messages[messages[0]["role"] == "system"]["content"].insert(0, {"type": "image"})
            markers = 1
        if markers != len(images):
            raise BadSample(
                BadSampleKind.IMAGE_COUNT_MISMATCH,
                sample_id,
                f"{markers} <image> markers but {len(images)} images",
            )
        loaded = [load_image(rel, self.image_root, sample_id) for rel in images]
        return Example(sample_id, messages, loaded, source=str(self.path))

    def modality_lengths(self) -> tuple[list[int], list[bool]]:
        """Cheap per-record text lengths (words) and has-image flags, for the length-grouped sampler."""
        lengths, has_image = [], []
        for record in self.records:
            ok = isinstance(record, dict) and isinstance(record.get("conversations"), list)
            turns = record["conversations"] if ok else []
            lengths.append(sum(len(str(t.get("value", "")).split()) for t in turns if isinstance(t, dict)))
            has_image.append(ok and bool(record.get("image")))
        return lengths, has_image


def _read_records(path: Path) -> list[dict[str, Any] | BadSample]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        data = json.loads(text)
        if not isinstance(data, list):
            raise ValueError(f"{path} must hold a JSON list of records")
        return data
    records: list[dict[str, Any] | BadSample] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
            records.append(record)
        except ValueError as err:
            records.append(BadSample(BadSampleKind.MALFORMED_RECORD, f"{path.name}:{number}", str(err)))
    return records
