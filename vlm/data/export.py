"""Any conversation source written as a LLaVA corpus: ``NAME.json`` and its images under ``images/``."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

from vlm.data.example import Example
from vlm.templates import IMAGE_TOKEN

LLAVA_ROLES = {"user": "human", "assistant": "gpt", "system": "system"}


def to_record(example: Example, image_paths: list[str]) -> dict[str, Any]:
    """The LLaVA record of ``example``: image items become ``<image>`` markers (a newline after each)."""
    turns = []
    for message in example.messages:
        text = "".join(f"{IMAGE_TOKEN}\n" if item["type"] == "image" else item["text"] for item in message["content"])
        turns.append({"from": LLAVA_ROLES[message["role"]], "value": text})
    record: dict[str, Any] = {"id": example.id, "conversations": turns}
    if image_paths:
        record["image"] = image_paths[0] if len(image_paths) == 1 else image_paths
    return record


def write_llava(examples: list[Example], out: Path, name: str) -> Path:
    """``out/NAME.json`` with every example; each distinct image once, as ``images/<content hash>.png``."""
    (out / "images").mkdir(parents=True, exist_ok=True)
    records = []
    for example in examples:
        paths = []
        for image in example.images:
            data = io.BytesIO()
            image.save(data, format="PNG")
            rel = f"images/{hashlib.sha1(data.getvalue()).hexdigest()[:16]}.png"
            if not (out / rel).is_file():
                (out / rel).write_bytes(data.getvalue())
            paths.append(rel)
        records.append(to_record(example, paths))
    path = out / f"{name}.json"
    path.write_text(json.dumps(records, indent=1))
    return path
