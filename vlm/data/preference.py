"""Preference data for DPO: records ``{"id", "image"(s), "prompt", "chosen", "rejected"}``.

Sources (`PREFERENCE_SOURCES`): ``llava_json``, a JSON/JSONL file of such records with an image root;
plugins add more (the shapes world's ``synthetic``: its ``pref`` pairs and POVID pairs).
`PreferenceDataset` encodes both answers through the chat template (loss positions = the assistant
reply only: prompt, image and padding positions are ``-100``) and, for POVID's noise term, adds a
noise-distorted copy of the pixels, seeded per sample so resumed runs see the same noise.
`PreferenceCollator` puts the chosen rows first and the rejected rows after them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from vlm.data.collate import Collator
from vlm.data.errors import BadSample, BadSampleKind
from vlm.data.example import Example
from vlm.data.images import load_image
from vlm.data.povid import noisy_pixel_values
from vlm.data.registry import PREFERENCE_SOURCES
from vlm.data.sources import record_images, record_messages
from vlm.data.tokenize import encode_example
from vlm.processing import VLMProcessor


class JsonPreferences:
    """A JSON list or JSONL file of preference records; images are loaded (and checked) from ``image_root``."""

    def __init__(self, path: str | Path, image_root: str | Path | None = None):
        path = Path(path)
        text = path.read_text()
        self.records = [json.loads(x) for x in text.splitlines() if x.strip()] if path.suffix == ".jsonl" else json.loads(text)
        self.root = Path(image_root) if image_root else path.parent

    def __len__(self) -> int:
        return len(self.records)

    def get(self, index: int) -> tuple[dict[str, Any], list]:
        record = self.records[index]
        sample_id = str(record.get("id", index))
        return record, [load_image(str(ref), self.root, sample_id) for ref in record_images(record)]

    def modality_lengths(self) -> tuple[list[int], list[bool]]:
        return [preference_length(r) for r in self.records], [bool(record_images(r)) for r in self.records]


def preference_length(record: dict) -> int:
    return sum(len(str(record.get(k, "")).split()) for k in ("prompt", "chosen", "rejected"))


@PREFERENCE_SOURCES.register("llava_json")
def _open_json_preferences(cfg: Any, seed: int) -> JsonPreferences:
    if cfg.path is None or not Path(cfg.path).is_file():
        raise FileNotFoundError(f"preference data file not found: {cfg.path!r} (set --stages.<name>.data.path)")
    return JsonPreferences(cfg.path, cfg.image_root)


class PreferenceDataset(torch.utils.data.Dataset):
    """Encoded pairs; a bad pair is returned as its `BadSample` (the loop counts and skips it)."""

    def __init__(self, source, processor: VLMProcessor, max_length: int, noise_step: int | None = None, seed: int = 0):
        self.source, self.processor, self.max_length = source, processor, max_length
        self.noise_step, self.seed = noise_step, seed

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> dict[str, Any] | BadSample:
        try:
            return self.encode(index)
        except BadSample as bad:
            return bad

    def encode(self, index: int) -> dict[str, Any]:
        record, images = self.source.get(index)
        sample_id = str(record.get("id", index))
        out: dict[str, Any] = {"id": sample_id}
        for side in ("chosen", "rejected"):
            if not isinstance(record.get(side), str) or not isinstance(record.get("prompt"), str):
                raise BadSample(BadSampleKind.BAD_CONVERSATION, sample_id, f"needs string 'prompt' and '{side}'")
            turns = [{"from": "human", "value": record["prompt"]}, {"from": "gpt", "value": record[side]}]
            messages = record_messages({"conversations": turns}, sample_id, len(images))
            encoded = encode_example(Example(sample_id, messages, images), self.processor, self.max_length, "drop")
            out[f"{side}_input_ids"], out[f"{side}_labels"] = encoded["input_ids"], encoded["labels"]
            out["pixel_values"], out["image_sizes"] = encoded["pixel_values"], encoded.get("image_sizes")
        if self.noise_step is not None and out["pixel_values"] is not None:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
            ip = self.processor.image_processor
            out["noisy_pixel_values"] = noisy_pixel_values(out["pixel_values"], ip.image_mean, ip.image_std,
                                                           self.noise_step, generator)
        return out


class PreferenceCollator:
    """Rows ``[chosen_0 .. chosen_{B-1}, rejected_0 .. rejected_{B-1}]`` padded right; ``pixel_values``
    for the chosen rows then again for the rejected rows; ``noisy_pixel_values`` once; ``pairs`` = B."""

    def __init__(self, pad_token_id: int):
        self.pad = Collator(pad_token_id)

    def __call__(self, pairs: list[dict[str, Any]]) -> dict[str, Any]:
        rows = [{"input_ids": p[f"{side}_input_ids"], "labels": p[f"{side}_labels"], "pixel_values": p["pixel_values"],
                 "image_sizes": p.get("image_sizes")} for side in ("chosen", "rejected") for p in pairs]
        batch = self.pad(rows)
        noisy = [p["noisy_pixel_values"] for p in pairs if p.get("noisy_pixel_values") is not None]
        if noisy:
            batch["noisy_pixel_values"] = torch.cat(noisy)
        batch["pairs"] = len(pairs)
        return batch
