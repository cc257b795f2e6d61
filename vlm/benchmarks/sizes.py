"""Benchmark models at three sizes, each as our model and as Hugging Face's Llava holding identical weights.

``tiny`` is the test-suite parts; ``20M`` and ``100M`` are a CLIP ViT and a Llama with a 32k vocabulary
(as real LLMs have; the tiny tokenizer's ids are a subset); ``128k`` is a small Llama with Llama-3's
128k vocabulary trained on multi-turn dialogs (many answer tokens), where the LM head's logits dominate
memory. Random weights, written as HF folders and loaded through the same `build()` path as real
checkpoints, then exported with `export_llava`.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    AutoModel,
    AutoModelForCausalLM,
    CLIPImageProcessor,
    CLIPVisionConfig,
    LlamaConfig,
    LlavaForConditionalGeneration,
)
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

from vlm.build import BuildSpec, build
from vlm.export import export_llava
from vlm.hub import resolve_part


@dataclass(frozen=True)
class Size:
    name: str
    image_size: int = 64
    batch_size: int = 8
    vision: dict | None = None  # CLIPVisionConfig fields; None: tiny-clip
    llm: dict | None = None  # LlamaConfig fields; None: tiny-llama
    vocab: int = 32000
    tasks: tuple[str, ...] = ("caption", "instruct")  # the shapes-world tasks its training samples mix


_VIT = dict(patch_size=16)
SIZES = {
    "tiny": Size("tiny"),
    "20M": Size(
        "20M", image_size=112, batch_size=8,
        vision=dict(_VIT, hidden_size=192, intermediate_size=768, num_hidden_layers=4, num_attention_heads=3),
        llm=dict(hidden_size=256, intermediate_size=704, num_hidden_layers=6, num_attention_heads=4, num_key_value_heads=2),
    ),
    "100M": Size(
        "100M", image_size=224, batch_size=4,
        vision=dict(_VIT, hidden_size=384, intermediate_size=1536, num_hidden_layers=6, num_attention_heads=6),
        llm=dict(hidden_size=640, intermediate_size=1728, num_hidden_layers=10, num_attention_heads=10, num_key_value_heads=5),
    ),
    "128k": Size(
        "128k", image_size=112, batch_size=4, vocab=128256, tasks=("dialog",),
        vision=dict(_VIT, hidden_size=192, intermediate_size=768, num_hidden_layers=4, num_attention_heads=3),
        llm=dict(hidden_size=256, intermediate_size=704, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2),
    ),
}


def _write_parts(size: Size, root: Path) -> tuple[str, str]:
    if size.vision is None:
        return "tiny-clip", "tiny-llama"
    torch.manual_seed(0)
    vision_dir, llm_dir = root / "vision", root / "llm"
    AutoModel.from_config(CLIPVisionConfig(image_size=size.image_size, **size.vision)).save_pretrained(
        vision_dir
    )
    edge = {"shortest_edge": size.image_size}
    crop = {"height": size.image_size, "width": size.image_size}
    CLIPImageProcessor(
        size=edge, crop_size=crop, image_mean=OPENAI_CLIP_MEAN, image_std=OPENAI_CLIP_STD
    ).save_pretrained(vision_dir)
    tiny_llm = resolve_part("tiny-llama")
    base = LlamaConfig.from_pretrained(tiny_llm)
    ids = {k: getattr(base, k) for k in ("bos_token_id", "eos_token_id", "pad_token_id")}
    config = LlamaConfig(
        vocab_size=size.vocab, tie_word_embeddings=False, max_position_embeddings=4096, **size.llm, **ids
    )
    AutoModelForCausalLM.from_config(config).save_pretrained(llm_dir)
    for f in tiny_llm.iterdir():
        if "token" in f.name or f.name in (
            "generation_config.json",
            "special_tokens_map.json",
            "chat_template.jinja",
        ):
            shutil.copy(f, llm_dir / f.name)
    return str(vision_dir), str(llm_dir)


def load_pair(size: Size) -> tuple[torch.nn.Module, torch.nn.Module, object, dict]:
    """(ours, HF Llava with the same weights, our processor, parameter counts)."""
    with tempfile.TemporaryDirectory() as tmp:
        vision, llm = _write_parts(size, Path(tmp))
        ours, processor = build(BuildSpec(vision=vision, projector="mlp2x_gelu", llm=llm))
        export_llava(ours, processor, Path(tmp) / "llava")
        hf = LlavaForConditionalGeneration.from_pretrained(Path(tmp) / "llava")
    counts = {
        "total": sum(p.numel() for p in ours.parameters()),
        "vision": sum(p.numel() for p in ours.vision_tower.parameters()),
        "llm": sum(p.numel() for p in ours.language_model.parameters()),
    }
    return ours, hf, processor, counts
