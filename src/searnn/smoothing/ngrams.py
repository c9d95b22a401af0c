"""Batched n-gram bookkeeping on token-id tensors (no Python loop over sequences).

An n-gram of token ids is mapped to one int64 *code*. When ``(V + 1)^max_order < 2^63`` the code is
exact (the n-gram written in base ``V + 1``, tokens shifted by one so that no code of order n equals
one of another order); for larger vocabularies it is a pair of independent 31-bit polynomial hashes
(collision probability about ``count^2 / 2^62``, negligible at corpus sizes). Codes let a batch be
compared with itself (occurrence counts), with references (clipped matches) and with a global
table (CIDEr-D document frequencies) with the same tensors.
"""

from __future__ import annotations

import torch
from torch import Tensor

_P1, _A1 = 2_147_483_647, 1_000_003  # 2^31 - 1 (prime) and a multiplier
_P2, _A2 = 2_147_483_629, 999_983


def exact_codes_fit(vocab_size: int, max_order: int) -> bool:
    """True when order-``max_order`` n-grams of ``vocab_size`` tokens have exact int64 codes."""
    return (vocab_size + 1) ** max_order < 2**63


def ngram_codes(seq: Tensor, n: int, vocab_size: int, max_order: int = 4) -> Tensor:
    """Codes of all n-gram windows.

    seq: ``(..., T)`` long token ids in ``[0, vocab_size)``. Returns ``(..., max(T - n + 1, 0))`` int64;
    window i covers ``seq[..., i:i+n]``. Windows that run past a sequence's length are still coded:
    mask them with :func:`valid_mask`.
    """
    width = max(seq.shape[-1] - n + 1, 0)
    shifted = seq.long() + 1
    if exact_codes_fit(vocab_size, max_order):
        base = vocab_size + 1
        code = torch.zeros(*seq.shape[:-1], width, dtype=torch.long, device=seq.device)
        for i in range(n):
            code = code * base + shifted[..., i : i + width]
        return code
    h1 = torch.zeros(*seq.shape[:-1], width, dtype=torch.long, device=seq.device)
    h2 = torch.zeros_like(h1)
    for i in range(n):
        h1 = (h1 * _A1 + shifted[..., i : i + width]) % _P1
        h2 = (h2 * _A2 + shifted[..., i : i + width]) % _P2
    return h1 * (2**31) + h2


def valid_mask(lengths: Tensor, n: int, width: int) -> Tensor:
    """``(..., width)`` bool: window i is a complete n-gram of a sequence of length ``lengths[...]``."""
    pos = torch.arange(width, device=lengths.device)
    return pos < (lengths[..., None] - n + 1)


def occurrence_rank(codes: Tensor, valid: Tensor) -> Tensor:
    """How many earlier valid windows of the same sequence hold the same n-gram.

    codes, valid: ``(N, P)``. Returns ``(N, P)`` long. Summing ``rank < m`` over the windows of one
    n-gram g gives ``min(count(g), m)``, which turns clipped counts into integer sums over windows.
    """
    p = codes.shape[-1]
    earlier = torch.ones(p, p, dtype=torch.bool, device=codes.device).tril(-1)  # (P, P): j < i
    same = (codes[:, :, None] == codes[:, None, :]) & earlier & valid[:, None, :]
    return same.sum(-1)


def self_counts(codes: Tensor, valid: Tensor) -> Tensor:
    """``(..., P)`` long: number of valid windows of the same sequence equal to each window."""
    same = (codes[..., :, None] == codes[..., None, :]) & valid[..., None, :]
    return same.sum(-1)


def counts_in_refs(codes: Tensor, ref_codes: Tensor, ref_valid: Tensor) -> Tensor:
    """Copies of each hypothesis window in each reference.

    codes: ``(N, P)``; ref_codes, ref_valid: ``(N, R, Q)``. Returns ``(N, R, P)`` long.
    """
    eq = codes[:, None, :, None] == ref_codes[:, :, None, :]  # (N, R, P, Q)
    return (eq & ref_valid[:, :, None, :]).sum(-1)


def lookup(table_codes: Tensor, table_values: Tensor, codes: Tensor, default: float = 0.0) -> Tensor:
    """Values of ``codes`` in a table sorted by code (``default`` for absent codes).

    table_codes: ``(M,)`` sorted int64; table_values: ``(M,)``; codes: any shape. Same shape as codes.
    """
    if table_codes.numel() == 0:
        return torch.full(codes.shape, default, dtype=table_values.dtype, device=codes.device)
    pos = torch.searchsorted(table_codes, codes.reshape(-1)).clamp(max=table_codes.numel() - 1)
    found = table_codes[pos] == codes.reshape(-1)
    out = torch.where(found, table_values[pos], torch.full_like(table_values[pos], default))
    return out.view(codes.shape)
