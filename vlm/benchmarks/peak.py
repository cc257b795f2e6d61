"""The machine's matmul peak, measured now (the denominator of MFU): the best of several large GEMMs,
through `torch.nn.functional.linear` as the models' layers call it (on CPUs without native bf16,
``torch.mm`` in bf16 takes a far slower path than ``linear``, which goes through oneDNN)."""

from __future__ import annotations

import time

import torch


def matmul_peak(dtype: torch.dtype, n: int = 1536, repeats: int = 6) -> float:
    """FLOP/s of the fastest of ``repeats`` n x n x n matrix products in ``dtype``."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.nn.functional.linear(a, b)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.nn.functional.linear(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best
