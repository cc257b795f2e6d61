"""Activation memory of one training forward, measured on the meta device (for `vlm.train.plan`).

A micro-batch (one image per sample, its largest tiling under ``high_res``) runs in the compute dtype
while autograd's saved-tensor hooks add up every distinct tensor kept for backward (parameters aside).
Fused attention (sdpa, flash, flex) is counted as the GPU kernels keep it (q, k, v, output and the
log-sum-exp, no score matrix); eager attention keeps its score matrices. Per checkpointable layer the
bytes it keeps and the bytes of its input are recorded, so gradient checkpointing can be accounted for.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from dataclasses import dataclass, field

import torch
from transformers.modeling_layers import GradientCheckpointingLayer

from vlm.layout import image_layout
from vlm.modeling import VLMForConditionalGeneration


class _FusedAttention(torch.autograd.Function):
    """Stands in for a fused attention kernel on the meta device: keeps what flash / memory-efficient
    attention keep for backward (q, k, v, output, fp32 log-sum-exp), never a score matrix."""

    @staticmethod
    def forward(ctx, q, k, v):
        out = q.new_empty(*q.shape[:-1], v.shape[-1])
        ctx.save_for_backward(q, k, v, out, q.new_empty(q.shape[:-1], dtype=torch.float32))
        return out

    @staticmethod
    def backward(ctx, grad):  # pragma: no cover - the plan never runs backward
        q, k, v, *_ = ctx.saved_tensors
        return torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v)


def _fused_sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
    return _FusedAttention.apply(query, key, value)


@contextlib.contextmanager
def _patched(target, name: str, value):
    original = getattr(target, name)
    setattr(target, name, value)
    try:
        yield
    finally:
        setattr(target, name, original)


@contextlib.contextmanager
def _meta_forward(eager: bool):
    """Fused attention counted as the GPU kernels keep it (unless eager), and transformers' search for
    packed sequences in the position ids (it reads values, which meta tensors have none of) skipped: an
    unpacked batch is planned."""
    from transformers import masking_utils

    with contextlib.ExitStack() as stack:
        stack.enter_context(_patched(masking_utils, "find_packed_sequence_indices", lambda position_ids: None))
        if not eager:
            stack.enter_context(_patched(torch.nn.functional, "scaled_dot_product_attention", _fused_sdpa))
        yield


@dataclass
class Activations:
    """Bytes autograd keeps for backward in one training forward: in all, and per checkpointable layer
    (with the bytes of that layer's input, what checkpointing keeps instead)."""

    total: int = 0
    layers: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    inputs: dict[str, int] = field(default_factory=dict)

    def checkpointed(self) -> int:
        kept = [name for name, n in self.layers.items() if n > 0]
        if not kept:
            return self.total
        rebuilt = max(self.layers[name] for name in kept)
        return self.total - sum(self.layers[n] for n in kept) + sum(self.inputs.get(n, 0) for n in kept) + rebuilt


def measure_activations(model: VLMForConditionalGeneration, batch: int, seq_length: int, eager: bool) -> Activations:
    """One training forward of ``batch`` samples of ``seq_length`` tokens (one image each) on the meta
    device, counting the distinct tensors autograd saves (see the module docstring)."""
    config = model.config
    layout = image_layout(config)
    sizes = [tuple(max(layout.grid_pinpoints, key=lambda p: layout.num_tokens(tuple(p))))] if layout.strategy.sized else [None]
    tiles = layout.tile_count(sizes[0])
    side = config.image_size
    dtype = next(model.parameters()).dtype
    params = {p.untyped_storage()._cdata for p in model.parameters()}
    seen: set[int] = set()
    result = Activations()
    stack: list[str] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        key = t.untyped_storage()._cdata
        if key not in params and key not in seen:
            seen.add(key)
            n = t.untyped_storage().nbytes()
            result.total += n
            if stack:
                result.layers[stack[-1]] += n
        return t

    hooks = []
    for name, module in model.named_modules():
        if isinstance(module, GradientCheckpointingLayer):
            def enter(m, args, kwargs, name=name):
                stack.append(name)
                first = next((a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)), None)
                result.inputs[name] = 0 if first is None else first.numel() * first.element_size()

            def leave(m, args, output):
                stack.pop()

            hooks.append(module.register_forward_pre_hook(enter, with_kwargs=True))
            hooks.append(module.register_forward_hook(leave))
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), _meta_forward(eager):
            pixels = torch.empty(batch * tiles, 3, side, side, device="meta", dtype=dtype)
            image_sizes = torch.tensor([sizes[0]] * batch) if sizes[0] else None
            features = torch.stack(model.image_features(pixels, image_sizes))  # (batch, n, d)
            n_text = max(seq_length - features.shape[1], 1)
            ids = torch.empty(batch, n_text, dtype=torch.long, device="meta")
            embeds = torch.cat([features.to(dtype), model.get_input_embeddings()(ids)], dim=1)
            labels = torch.empty(batch, embeds.shape[1], dtype=torch.long, device="meta")
            model.language_model(inputs_embeds=embeds, labels=labels, use_cache=False)
    finally:
        for hook in hooks:
            hook.remove()
    return result
