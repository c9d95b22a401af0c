"""Smoothed sentence BLEU: sufficient statistics, score, cost and the best-suffix BLEU-1 oracle.

Smoothed BLEU of Bahdanau et al. (2017), as in SeaRNN (docs/METHODS.md §4.3), for orders n = 1..K:
``p_n = (m_n + 1) / (h_n + 1)`` with ``m_n`` the clipped n-gram matches and ``h_n`` the hypothesis
n-gram count; ``BLEU = BP * prod_n p_n^(1/K)``, 0 when ``m_1 = 0``; ``BP = exp(1 - r/c)`` if
``c < r`` (c, r: hypothesis and reference lengths), 1 otherwise, 0 when ``c = 0``.

N-grams are compared exactly (no hashing, no vocabulary-size limit): the pairwise n-gram equality
``E_n[i, j] = E_{n-1}[i, j] & E_1[i+n-1, j+n-1]`` is built from the unigram equality, order by order.
Clipping uses occurrence ranks: the k-th occurrence (k = 0, 1, ...) of an n-gram in the hypothesis
matches iff the reference holds more than k copies of it, which sums to ``min(count_h, count_r)``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from searnn.costs.base import Cost, completion_width, length_mask, splice
from searnn.data.vocab import Vocab


class BleuStats(NamedTuple):
    """Sufficient statistics of sentence BLEU, summable over sentences for corpus BLEU.

    matches, totals: ``(N, K)`` long, clipped matches ``m_n`` and hypothesis n-gram counts ``h_n`` for
    n = 1..K; hyp_len, ref_len: ``(N,)`` long (c and r).
    """

    matches: Tensor
    totals: Tensor
    hyp_len: Tensor
    ref_len: Tensor


def _shifted_equality(eq1: Tensor, order: int, eq_prev: Tensor) -> Tensor:
    """n-gram equality of order ``order`` from the previous order's and the unigram one.

    eq1 ``(N, A, B)`` bool, eq_prev ``(N, A - order + 2, B - order + 2)`` -> ``(N, A - order + 1, B - order + 1)``
    (sizes clamped at 0).
    """
    a = max(eq1.shape[1] - order + 1, 0)
    b = max(eq1.shape[2] - order + 1, 0)
    return eq_prev[:, :a, :b] & eq1[:, order - 1 : order - 1 + a, order - 1 : order - 1 + b]


def _strictly_lower(size: int, device: torch.device) -> Tensor:
    """``(size, size)`` bool, True where column < row."""
    return torch.ones(size, size, dtype=torch.bool, device=device).tril(-1)


def sentence_bleu_stats(hyp: Tensor, hyp_len: Tensor, ref: Tensor, ref_len: Tensor, max_order: int = 4) -> BleuStats:
    """Clipped n-gram matches and hypothesis n-gram counts, n = 1..max_order, for every row.

    ``(N, T), (N,), (N, T'), (N,) -> BleuStats`` with ``(N, max_order)`` counts. Memory
    ``O(N T (T + T'))`` booleans.
    """
    eq1_hr = hyp[:, :, None] == ref[:, None, :]  # (N, T, T')
    eq1_hh = hyp[:, :, None] == hyp[:, None, :]  # (N, T, T)
    eq_hr, eq_hh = eq1_hr, eq1_hh
    matches = []
    for n in range(1, max_order + 1):
        if n > 1:
            eq_hr = _shifted_equality(eq1_hr, n, eq_hr)
            eq_hh = _shifted_equality(eq1_hh, n, eq_hh)
        hv = length_mask(hyp_len - n + 1, eq_hr.shape[1])  # (N, A) valid hypothesis n-grams
        rv = length_mask(ref_len - n + 1, eq_hr.shape[2])  # (N, B) valid reference n-grams
        earlier = _strictly_lower(eq_hh.shape[1], hyp.device)  # (A, A): i' < i
        rank = (eq_hh & earlier & hv[:, None, :]).sum(2)  # (N, A) occurrence index
        in_ref = (eq_hr & rv[:, None, :]).sum(2)  # (N, A) copies in the reference
        matches.append((hv & (rank < in_ref)).sum(1))
    orders = torch.arange(1, max_order + 1, device=hyp.device)
    totals = (hyp_len[:, None] - orders + 1).clamp(min=0)
    return BleuStats(torch.stack(matches, 1), totals, hyp_len, ref_len)


def bleu_from_counts(matches: Tensor, totals: Tensor, hyp_len: Tensor, ref_len: Tensor) -> Tensor:
    """Smoothed sentence BLEU (module docstring) from counts ``(..., K)`` and lengths ``(...)`` -> ``(...)``
    float64. Products are taken on integers first, so equal rational precisions give equal floats (the
    oracle's tie rule relies on it)."""
    k = matches.shape[-1]
    ratio = (matches + 1).prod(-1).double() / (totals + 1).prod(-1).double()
    precision = ratio if k == 1 else ratio ** (1.0 / k)
    c, r = hyp_len.double(), ref_len.double()
    bp = torch.where(c < r, torch.exp(1.0 - r / c.clamp(min=1.0)), torch.ones_like(c))
    ok = (matches[..., 0] > 0) & (hyp_len > 0)
    return torch.where(ok, bp * precision, torch.zeros_like(bp))


def smoothed_bleu(stats: BleuStats) -> Tensor:
    """Smoothed sentence BLEU of each row from its statistics: ``BleuStats -> (N,)`` float64 in [0, 1]."""
    return bleu_from_counts(stats.matches, stats.totals, stats.hyp_len, stats.ref_len)


def best_suffix_bleu1(prefix: Tensor, prefix_len: Tensor, ref: Tensor, ref_len: Tensor, max_len: int) -> Tensor:
    """Length s of the reference suffix ``ref[len - s : len]`` maximising smoothed BLEU-1 (with BP) of
    ``prefix + suffix`` against ``ref`` (docs/METHODS.md §4.3 ``bleu1-best-suffix``, paper App. C.2), over
    ``s = 0 .. min(max_len - prefix_len, ref_len)``; ties (and all-zero scores) go to the smallest s.

    ``(N, P), (N,), (N, T'), (N,), int -> (N,)`` long. All candidates are scored at once without
    building them: the clipped unigram matches are counted on the reference side, the j-th reference
    token matching iff its occurrence rank is below its count in the candidate, and a candidate's count
    is the prefix count plus a suffix count read from a right-to-left cumulative sum. Memory
    ``O(N T' (T' + P))``.
    """
    n, width_r = ref.shape
    rv = length_mask(ref_len, width_r)  # (N, T')
    pv = length_mask(prefix_len, prefix.shape[1])  # (N, P)
    in_prefix = ((prefix[:, :, None] == ref[:, None, :]) & pv[:, :, None]).sum(1)  # (N, T') copies in prefix
    eq_rr = (ref[:, :, None] == ref[:, None, :]) & rv[:, None, :]  # (N, j, j')
    earlier = _strictly_lower(width_r, ref.device)
    rank = (eq_rr & earlier).sum(2)  # (N, T')
    # from_right[n, j, t] = copies of ref[n, j] in ref[n, t:ref_len]  (N, T', T'+1)
    from_right = eq_rr.flip(2).cumsum(2).flip(2)
    from_right = torch.cat([from_right, from_right.new_zeros(n, width_r, 1)], dim=2)
    s = torch.arange(max(min(max_len, width_r), 0) + 1, device=ref.device)  # (S+1,)
    cut = (ref_len[:, None] - s).clamp(0, width_r)  # (N, S+1) suffix start
    in_suffix = from_right.gather(2, cut[:, None, :].expand(n, width_r, s.shape[0]))  # (N, T', S+1)
    hit = rv[:, :, None] & (rank[:, :, None] < in_prefix[:, :, None] + in_suffix)
    matches = hit.sum(1)  # (N, S+1)
    cand_len = prefix_len[:, None] + s
    score = bleu_from_counts(matches[..., None], cand_len[..., None], cand_len, ref_len[:, None].expand_as(cand_len))
    allowed = (s == 0) | ((s <= ref_len[:, None]) & (s <= (max_len - prefix_len)[:, None]))
    score = torch.where(allowed, score, torch.full_like(score, -1.0))
    return torch.argmax(score, dim=1)  # first maximum = smallest s


class BleuCost(Cost):
    """``bleu``: 1 - smoothed sentence BLEU-``max_order`` (docs/METHODS.md §4.3, ``bleu-smoothed``).

    Oracle: the best BLEU-1 suffix (:func:`best_suffix_bleu1`) appended to the prefix, whatever
    ``max_order`` is (BLEU-4 would degenerate to appending the whole reference, paper App. C.2).
    """

    name = "bleu"

    def __init__(self, tgt_vocab: Vocab, max_order: int = 4):
        super().__init__(tgt_vocab)
        if max_order < 1:
            raise ValueError(f"max_order must be >= 1, got {max_order}")
        self.max_order = max_order

    def _cost(self, hyp: Tensor, hyp_len: Tensor, ref: Tensor, ref_len: Tensor) -> Tensor:
        return 1.0 - smoothed_bleu(sentence_bleu_stats(hyp, hyp_len, ref, ref_len, self.max_order))

    def _complete(
        self, prefix: Tensor, prefix_len: Tensor, ref: Tensor, ref_len: Tensor, max_len: int
    ) -> tuple[Tensor, Tensor]:
        s = best_suffix_bleu1(prefix, prefix_len, ref, ref_len, max_len)
        width = completion_width(prefix.shape[1], ref.shape[1], max_len)
        return splice(prefix, prefix_len, ref, ref_len - s, s, width)
