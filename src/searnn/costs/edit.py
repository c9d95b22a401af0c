"""Normalised Levenshtein cost (spelling correction) and its exact oracle."""

from __future__ import annotations

import torch
from torch import Tensor

from searnn.costs.base import Cost, completion_width, length_mask, splice


def edit_distance_rows(hyp: Tensor, hyp_len: Tensor, ref: Tensor, ref_len: Tensor) -> Tensor:
    """Last row of the Levenshtein DP table of each pair: ``D[n, j] = ED(hyp[n, :hyp_len[n]], ref[n, :j])``.

    ``(N, T), (N,), (N, T'), (N,) -> (N, T' + 1)`` long. Only ``j <= ref_len[n]`` is meaningful (larger
    ``j`` read the padding). The DP runs row by row over the T hypothesis positions, vectorised over N
    and over j: with ``tmp[j] = min(D[i-1, j] + 1, D[i-1, j-1] + [h_i != r_j])`` and ``tmp[0] = i``, the
    insertion chain ``D[i, j] = min_{k <= j} tmp[k] + (j - k)`` is one ``cummin``.
    """
    n, t = hyp.shape
    j = torch.arange(ref.shape[1] + 1, device=hyp.device)  # (T'+1,)
    row = j.repeat(n, 1)  # D[0, j] = j, (N, T'+1)
    last = row
    for i in range(1, t + 1):
        sub = (hyp[:, i - 1 : i] != ref).long()  # (N, T')
        tmp = torch.minimum(row[:, :-1] + sub, row[:, 1:] + 1)  # j = 1..T'
        tmp = torch.cat([row[:, :1] + 1, tmp], dim=1)  # D[i, 0] = i
        row = torch.cummin(tmp - j, dim=1).values + j
        last = torch.where((hyp_len == i)[:, None], row, last)
    return last


def levenshtein(hyp: Tensor, hyp_len: Tensor, ref: Tensor, ref_len: Tensor) -> Tensor:
    """Levenshtein distance (unit insert/delete/substitute): ``(N, T), (N,), (N, T'), (N,) -> (N,)`` long."""
    return edit_distance_rows(hyp, hyp_len, ref, ref_len).gather(1, ref_len[:, None]).squeeze(1)


class EditCost(Cost):
    """``edit``: Levenshtein distance / ``max(ref_len, 1)``.

    Oracle (exact, not in the reference code, which only has ``copy-gt``): any completion c of a prefix q
    splits the reference at some j, so ``min_c ED(q c, y) = min_j ED(q, y[:j]) + ED(c, y[j:])``. With at
    most ``m = max_len - |q|`` tokens left, the best c for a given j is ``y[j : j + m]`` at cost
    ``max(0, |y| - j - m)``, so the oracle takes ``j* = argmin_j ED(q, y[:j]) + max(0, |y| - j - m)`` and
    completes with ``y[j* : j* + m]``. Ties go to the **largest** j (the shortest completion, the BLEU
    oracle's rule too): among equally good readings it assumes the prefix consumed as much of the
    reference as possible, so a prefix with substitutions only continues position by position, like
    ``copy-gt``, instead of re-emitting reference tokens it already covered.
    """

    name = "edit"

    def _cost(self, hyp: Tensor, hyp_len: Tensor, ref: Tensor, ref_len: Tensor) -> Tensor:
        return levenshtein(hyp, hyp_len, ref, ref_len).float() / ref_len.clamp(min=1).float()

    def _complete(
        self, prefix: Tensor, prefix_len: Tensor, ref: Tensor, ref_len: Tensor, max_len: int
    ) -> tuple[Tensor, Tensor]:
        rows = edit_distance_rows(prefix, prefix_len, ref, ref_len)  # (N, T'+1)
        width_r = rows.shape[1]
        j = torch.arange(width_r, device=rows.device)[None, :]
        room = (max_len - prefix_len).clamp(min=0)[:, None]  # (N, 1)
        total = rows + (ref_len[:, None] - j - room).clamp(min=0)
        total = torch.where(length_mask(ref_len + 1, width_r), total, torch.full_like(total, 1 << 40))
        # argmin with ties to the largest j: minimise total * (T'+1) - j.
        best = torch.argmin(total * width_r - j, dim=1)  # (N,)
        count = torch.minimum(ref_len - best, room[:, 0])
        width = completion_width(prefix.shape[1], ref.shape[1], max_len)
        return splice(prefix, prefix_len, ref, best, count, width)
