"""Tiny causal LMs: Llama and Qwen2 shapes with the shared BPE and their chat templates; ``tiny-llama-shapes``
is tiny-llama after self-training on shapes-world text (`vlm.tiny.pretrain_text`)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from transformers import (
    AutoModelForCausalLM,
    GenerationConfig,
    LlamaConfig,
    PreTrainedTokenizerFast,
    Qwen2Config,
)

from vlm.templates import CHAT_TEMPLATES
from vlm.tiny.backbone import save_model, tiny_backbone
from vlm.tiny.pretrain_text import pretrain_text
from vlm.tiny.tokenizer import tiny_tokenizer

# Heads of dimension 32 and an init of 0.1, about 1/sqrt(width): at transformers' 0.02 (or 0.05) attention starts
# uniform and the LM sits on a long plateau before it learns to find an object by one attribute and report
# another (docs/default-model.md).
LM_SIZES = dict(
    hidden_size=128,
    intermediate_size=352,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=4,
    initializer_range=0.1,
    max_position_embeddings=4096,
)


def _save_lm(
    out: Path, config_class: type, tokenizer: PreTrainedTokenizerFast, eos: int | list[int], tied: bool
) -> None:
    ids = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=eos, pad_token_id=tokenizer.pad_token_id)
    config = config_class(vocab_size=len(tokenizer), tie_word_embeddings=tied, **LM_SIZES, **ids)
    save_model(config, AutoModelForCausalLM, out)
    GenerationConfig(**ids).save_pretrained(out)
    tokenizer.save_pretrained(out)


@tiny_backbone("tiny-llama")
def tiny_llama(out: Path) -> None:
    tokenizer = tiny_tokenizer(
        {
            "bos_token": "<|begin_of_text|>",
            "eos_token": "<|eot_id|>",
            "pad_token": "<|finetune_right_pad_id|>",
        },
        ["<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>"],
        CHAT_TEMPLATES.get("llama3"),
    )
    eos = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|end_of_text|>")]
    _save_lm(out, LlamaConfig, tokenizer, eos, tied=False)


@tiny_backbone("tiny-qwen2")
def tiny_qwen2(out: Path) -> None:
    tokenizer = tiny_tokenizer(
        {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
        ["<|im_start|>"],
        CHAT_TEMPLATES.get("chatml"),
    )
    _save_lm(out, Qwen2Config, tokenizer, tokenizer.eos_token_id, tied=True)


@tiny_backbone("tiny-llama-shapes", self_trained=True)
def tiny_llama_shapes(out: Path) -> None:
    """tiny-llama after reading shapes-world scenes as text and answering questions about them
    (`vlm.tiny.pretrain_text`): the "is it there?" skill a real VLM inherits from its LLM."""
    with tempfile.TemporaryDirectory() as tmp:
        start = Path(tmp) / "tiny-llama-shapes"  # the name the progress bar shows
        tiny_llama(start)
        pretrain_text(start, out)
