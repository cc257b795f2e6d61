"""Logit parity along a model's way out: a stage's live model (LoRA adapters active), its checkpoint merged
by `vlm merge`, the merged folder reloaded, and its Llava export run by plain transformers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from transformers import AutoProcessor, LlavaForConditionalGeneration

from vlm.train.checkpoint import STATE_FILE, TrainerState
from vlm.train.config import Recipe, StageConfig
from vlm.train.overrides import to_yaml

REFERENCE = Path(__file__).with_name("llava_reference.py")
QUESTION = "What colour is the large shape?"


def picture(height: int = 80, width: int = 120, seed: int = 0) -> Image.Image:
    """A deterministic non-square RGB image (exercises pad-to-square in both processors)."""
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8))


def inputs(folder: Path, image: Image.Image) -> dict:
    processor = AutoProcessor.from_pretrained(folder)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    return processor(images=[image], text=[text], return_tensors="pt")


def logits(model, batch: dict) -> torch.Tensor:
    model.eval()
    with torch.inference_mode():
        return model(**batch).logits.float()


def reference(exported: Path, image: Image.Image, work: Path | None = None) -> dict[str, torch.Tensor]:
    """input_ids, logits and 12 greedy tokens of ``exported`` run by transformers' own Llava classes: in a
    separate process that never imports vlm (llava_reference.py) when ``work`` is given, else here."""
    if work is None:
        model = LlavaForConditionalGeneration.from_pretrained(exported).eval()
        batch = inputs(exported, image)
        return {"input_ids": batch["input_ids"], "logits": logits(model, batch),
                "generated": model.generate(**batch, max_new_tokens=12, do_sample=False)}
    work.mkdir(parents=True, exist_ok=True)
    image.save(work / "image.png")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    subprocess.run([sys.executable, str(REFERENCE), str(exported), str(work / "image.png"), QUESTION,
                    str(work / "reference.safetensors")], check=True, env=env)
    return load_file(work / "reference.safetensors")


def write_checkpoint(run: Path, stage: StageConfig, start: Path, trained: dict[str, torch.Tensor]) -> Path:
    """A run folder as training leaves it, for a one-stage run from ``start`` (linked as RUN/init):
    config.yaml and ``stages/NAME/checkpoints/checkpoint-1`` holding the trainable tensors."""
    ckpt = run / "stages" / stage.name / "checkpoints" / "checkpoint-1"
    ckpt.mkdir(parents=True)
    (run / "config.yaml").write_text(to_yaml(Recipe(name="round-trip", model=None, stages=[stage])))
    (run / "init").symlink_to(start.absolute(), target_is_directory=True)
    save_file({k: v.detach().contiguous() for k, v in trained.items()}, ckpt / "model.safetensors")
    (ckpt / STATE_FILE).write_text(json.dumps(TrainerState(step=1).__dict__))
    return ckpt


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().max().item()
