"""Normalised Hamming cost (OCR) and its copy-the-reference oracle."""

from __future__ import annotations

import torch
from torch import Tensor

from searnn.costs.base import Cost, length_mask, pad_to, splice


def hamming_errors(hyp: Tensor, hyp_len: Tensor, ref: Tensor, ref_len: Tensor) -> Tensor:
    """Mismatches over positions ``p < max(hyp_len, ref_len)``; a position present in only one of the two
    sequences is a mismatch. ``(N, T), (N,), (N, T'), (N,) -> (N,)`` long."""
    width = max(hyp.shape[1], ref.shape[1])
    both = length_mask(torch.minimum(hyp_len, ref_len), width)  # (N, W)
    differ = (pad_to(hyp, width) != pad_to(ref, width)) & both
    return differ.sum(1) + (hyp_len - ref_len).abs()


class HammingCost(Cost):
    """``hamming``: Hamming errors / ``max(ref_len, 1)`` (docs/METHODS.md §4.1, positions beyond the reference
    count as errors instead of EOS padding matching).

    Oracle (``copy-gt``, optimal for this cost): after the prefix, copy the reference by position,
    ``ref[prefix_len:ref_len]``; a prefix already as long as the reference is returned unchanged.
    """

    name = "hamming"

    def _cost(self, hyp: Tensor, hyp_len: Tensor, ref: Tensor, ref_len: Tensor) -> Tensor:
        return hamming_errors(hyp, hyp_len, ref, ref_len).float() / ref_len.clamp(min=1).float()

    def _complete(
        self, prefix: Tensor, prefix_len: Tensor, ref: Tensor, ref_len: Tensor, max_len: int
    ) -> tuple[Tensor, Tensor]:
        room = (max_len - prefix_len).clamp(min=0)
        count = torch.minimum((ref_len - prefix_len).clamp(min=0), room)
        width = max(prefix.shape[1], min(max_len, ref.shape[1]))  # prefix + completion <= max(P, T')
        return splice(prefix, prefix_len, ref, prefix_len, count, width)
