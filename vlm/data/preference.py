"""Preference data for DPO: records ``{"id", "image"(s), "prompt", "chosen", "rejected"}``.

Sources: the synthetic world's ``pref`` pairs or POVID pairs (``povid``: every caption and VQA
answer against its hallucinated rewrite; ``povid_objects``: only its object-existence pairs), or a
JSON/JSONL file of such records with an image root.
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
from vlm.data.povid import RuleRewriter, noisy_pixel_values, povid_records
from vlm.data.sources import record_images, record_messages
from vlm.data.synthetic import SyntheticWorld
from vlm.data.tokenize import encode_example
from vlm.processing import VLMProcessor


class SyntheticPreferences:
    """``pref`` (captions with a swapped attribute/relation, counts off by one), ``povid`` records or
    ``povid_objects`` (the ``povid`` records of type ``existence``)."""

    TASKS = ("pref", "povid", "povid_objects")

    def __init__(self, n_images: int, task: str = "pref", split: str = "train", image_size: int = 96, seed: int = 0,
                 first: int = 0):
        if task not in self.TASKS:
            raise ValueError(f"synthetic preference task must be one of {self.TASKS}, not {task!r}")
        self.world = SyntheticWorld(split, image_size)
        rewriter = RuleRewriter(seed)
        scenes = range(first, first + n_images)
        if task == "pref":
            self.records = [(i, r) for i in scenes for r in self.world.records(i, "pref")]
        else:
            self.records = [(i, r) for i in scenes for r in povid_records(self.world, i, rewriter)
                            if task == "povid" or r["type"] == "existence"]

    def __len__(self) -> int:
        return len(self.records)

    def get(self, index: int) -> tuple[dict[str, Any], list]:
        scene, record = self.records[index]
        return record, [self.world.image(scene)]

    def modality_lengths(self) -> tuple[list[int], list[bool]]:
        return [_length(r) for _, r in self.records], [True] * len(self.records)


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
        return [_length(r) for r in self.records], [bool(record_images(r)) for r in self.records]


def _length(record: dict) -> int:
    return sum(len(str(record.get(k, "")).split()) for k in ("prompt", "chosen", "rejected"))


def open_preferences(cfg: Any, seed: int = 0) -> SyntheticPreferences | JsonPreferences:
    """A stage's `DataConfig` as a preference source: ``synthetic`` (a `SyntheticPreferences.TASKS` task)
    or a JSON file."""
    if cfg.source == "synthetic":
        if len(cfg.tasks) != 1:
            raise ValueError(f"a preference stage reads one synthetic task {SyntheticPreferences.TASKS}, not {cfg.tasks}")
        return SyntheticPreferences(cfg.n_images, cfg.tasks[0], "train", cfg.image_size, seed, cfg.first_image)
    if cfg.source in ("llava_json", "json"):
        if cfg.path is None or not Path(cfg.path).is_file():
            raise FileNotFoundError(f"preference data file not found: {cfg.path!r} (set --stages.<name>.data.path)")
        return JsonPreferences(cfg.path, cfg.image_root)
    raise ValueError(f"preference data source {cfg.source!r}: use 'synthetic' or 'llava_json' (a JSON/JSONL file)")


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
