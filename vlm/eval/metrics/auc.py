"""ROC AUC, for scores that rank positives above negatives (e.g. logit(yes) - logit(no) per question)."""

from __future__ import annotations

import torch


def roc_auc(positive: list[float], negative: list[float]) -> float:
    """P(a positive scores above a negative), ties counting one half (Mann-Whitney U from mid-ranks,
    so memory stays linear in the number of scores)."""
    scores = torch.tensor(list(positive) + list(negative), dtype=torch.float64)
    order = scores.argsort()
    _, group, counts = torch.unique_consecutive(scores[order], return_inverse=True, return_counts=True)
    mid_ranks = counts.cumsum(0).double() - (counts.double() - 1) / 2  # 1-based mean rank of each tie group
    ranks = torch.empty_like(scores)
    ranks[order] = mid_ranks[group]
    n_pos, n_neg = len(positive), len(negative)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
