"""Causal LMs of the papers' presets at their published shapes (Vicuna / Llama-2, Llama-3, Qwen2)."""

from __future__ import annotations

from transformers import LlamaConfig, Qwen2Config

from vlm.published.base import Published, shape_part

# Llama-2 (Touvron et al. 2023) and Vicuna v1.5, fine-tuned from it: 4k context, vocabulary 32000, untied head
LLAMA2 = dict(vocab_size=32000, max_position_embeddings=4096, rms_norm_eps=1e-5, tie_word_embeddings=False,
              bos_token_id=1, eos_token_id=2, pad_token_id=0)
LLAMA2_7B = dict(LLAMA2, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                 num_key_value_heads=32)

shape_part(Published(
    "vicuna-7b-v1.5", "llm", lambda: LlamaConfig(**LLAMA2_7B), ("lmsys/vicuna-7b-v1.5",), 6.74e9, "Vicuna-7B v1.5, 6.74B",
))
shape_part(Published(
    "llama-2-7b", "llm", lambda: LlamaConfig(**LLAMA2_7B), ("meta-llama/Llama-2-7b-hf", "meta-llama/Llama-2-7b-chat-hf"),
    6.74e9, "Llama-2-7B, 6.74B",
))
shape_part(Published(
    "vicuna-13b-v1.5", "llm",
    lambda: LlamaConfig(**LLAMA2, hidden_size=5120, intermediate_size=13824, num_hidden_layers=40,
                        num_attention_heads=40, num_key_value_heads=40),
    ("lmsys/vicuna-13b-v1.5",), 13.0e9, "Vicuna-13B v1.5, 13.0B",
))
shape_part(Published(
    "llama-3-8b", "llm",
    lambda: LlamaConfig(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                        num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=8192,
                        rope_parameters={"rope_type": "default", "rope_theta": 500000.0}, rms_norm_eps=1e-5,
                        tie_word_embeddings=False, bos_token_id=128000, eos_token_id=128001),
    ("meta-llama/Meta-Llama-3-8B", "meta-llama/Meta-Llama-3-8B-Instruct"), 8.03e9, "Llama-3-8B, 8.03B",
))

# Qwen2 (Yang et al. 2024): grouped-query attention with biased q/k/v projections; 0.5B ties its embeddings
QWEN2 = dict(max_position_embeddings=32768, rms_norm_eps=1e-6, rope_parameters={"rope_type": "default", "rope_theta": 1e6},
             bos_token_id=151643, eos_token_id=151643)
shape_part(Published(
    "qwen2-0.5b", "llm",
    lambda: Qwen2Config(**QWEN2, vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                        num_attention_heads=14, num_key_value_heads=2, tie_word_embeddings=True),
    ("Qwen/Qwen2-0.5B", "Qwen/Qwen2-0.5B-Instruct"), 0.49e9, "Qwen2-0.5B, 0.49B",
))
shape_part(Published(
    "qwen2-7b", "llm",
    lambda: Qwen2Config(**QWEN2, vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                        num_attention_heads=28, num_key_value_heads=4, tie_word_embeddings=False),
    ("Qwen/Qwen2-7B", "Qwen/Qwen2-7B-Instruct"), 7.6e9, "Qwen2-7B, 7.6B",
))
