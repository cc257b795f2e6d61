"""Cross-entropy over an LM head without the full logits: the vocabulary projection and the loss are
computed chunk by chunk, and the gradients with them, so memory holds one chunk's logits at a time
instead of (tokens x vocabulary) twice (logits and their gradient). With a 128k vocabulary that is most
of a step's activation memory.

The gradients are exact: per chunk, ``softmax(logits) - one_hot(target)`` is the gradient of the summed
cross-entropy with respect to the logits, from which the hidden states' and the head's gradients follow
by two matmuls; backward only scales them by the incoming gradient.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


class _FusedLinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk: int) -> torch.Tensor:
        need_hidden, need_weight = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        loss = torch.zeros((), dtype=torch.float32, device=hidden.device)
        grad_hidden = torch.zeros_like(hidden) if need_hidden else None
        grad_weight = torch.zeros_like(weight, dtype=torch.float32) if need_weight else None
        for start in range(0, hidden.shape[0], chunk):
            h, t = hidden[start : start + chunk], targets[start : start + chunk]
            logits = (h @ weight.t()).float()
            loss = loss + F.cross_entropy(logits, t, ignore_index=-100, reduction="sum")
            if need_hidden or need_weight:
                grad = torch.softmax(logits, dim=-1)
                valid = t != -100
                grad[valid, t[valid]] -= 1.0
                grad[~valid] = 0.0
                grad = grad.to(h.dtype)
                if need_hidden:
                    grad_hidden[start : start + chunk] = grad @ weight
                if need_weight:
                    grad_weight += (grad.t() @ h).float()
        ctx.save_for_backward(grad_hidden, grad_weight)
        ctx.weight_dtype = weight.dtype
        return loss

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor):
        grad_hidden, grad_weight = ctx.saved_tensors
        scale = grad_loss.to(torch.float32)
        out_hidden = grad_hidden * scale.to(grad_hidden.dtype) if grad_hidden is not None else None
        out_weight = (grad_weight * scale).to(ctx.weight_dtype) if grad_weight is not None else None
        return out_hidden, out_weight, None, None


CHUNK_LOGITS = 2**22  # logits per chunk (16 MB in float32): 128 rows of a 32k vocabulary, 32 of a 128k one


def fused_linear_cross_entropy(
    hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk: int | None = None
) -> torch.Tensor:
    """Summed cross-entropy of ``hidden @ weight.T`` (float32 logits) against ``targets`` (-100: ignored),
    ``chunk`` rows at a time (default: `CHUNK_LOGITS` logits); ``hidden`` (n, d), ``weight`` (vocab, d),
    ``targets`` (n,)."""
    return _FusedLinearCrossEntropy.apply(hidden, weight, targets, chunk or max(8, CHUNK_LOGITS // weight.shape[0]))
