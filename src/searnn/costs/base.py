"""The cost seam.

A cost scores complete hypotheses against references on the model's device, batched, without
autograd and without a Python loop over the N rows::

    cost(hyp (N, T) long, hyp_len (N,) long, ref (N, T') long, ref_len (N,) long) -> (N,) float32

Sequences hold target token ids **without** BOS/EOS; positions at or beyond ``*_len`` are ignored
(whatever they contain, even negative ids). A cost is 0 for a perfect hypothesis; larger is worse.
Lengths must not exceed the tensors' widths.

Each cost also carries its reference policy (oracle)::

    complete(prefix (N, P) long, prefix_len (N,), ref (N, T'), ref_len (N,), max_len: int)
        -> (seq (N, L) long, seq_len (N,) long)

returning the prefix followed by the cost-minimising completion (no EOS; PAD after ``seq_len``). The
completion adds at most ``max_len - prefix_len`` tokens; a prefix is never cut, so
``seq_len <= max(max_len, prefix_len)``. The width ``L`` depends only on the input shapes and
``max_len`` (no device synchronisation).

Subclasses implement ``_cost`` and ``_complete``; the public methods check shapes and switch autograd
off. Helpers shared by the costs (masks, padding, splicing a prefix with a piece of the reference) live
here too.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from searnn.data.vocab import PAD_ID, Vocab


class Cost:
    """Base class of the task costs (see the module docstring for the interface)."""

    name: str = ""

    def __init__(self, tgt_vocab: Vocab):
        self.tgt_vocab = tgt_vocab

    def __call__(self, hyp: Tensor, hyp_len: Tensor, ref: Tensor, ref_len: Tensor) -> Tensor:
        """Cost of each row: ``(N, T), (N,), (N, T'), (N,) -> (N,)`` float32, 0 = perfect."""
        _check_pair(hyp, hyp_len, ref, ref_len)
        with torch.no_grad():
            return self._cost(hyp, hyp_len, ref, ref_len).float()

    def complete(
        self, prefix: Tensor, prefix_len: Tensor, ref: Tensor, ref_len: Tensor, max_len: int
    ) -> tuple[Tensor, Tensor]:
        """Reference policy: prefix ``(N, P)`` + oracle completion -> ``(seq (N, L), seq_len (N,))``."""
        _check_pair(prefix, prefix_len, ref, ref_len)
        with torch.no_grad():
            return self._complete(prefix, prefix_len, ref, ref_len, int(max_len))

    def _cost(self, hyp: Tensor, hyp_len: Tensor, ref: Tensor, ref_len: Tensor) -> Tensor:
        raise NotImplementedError

    def _complete(
        self, prefix: Tensor, prefix_len: Tensor, ref: Tensor, ref_len: Tensor, max_len: int
    ) -> tuple[Tensor, Tensor]:
        raise NotImplementedError


def _check_pair(hyp: Tensor, hyp_len: Tensor, ref: Tensor, ref_len: Tensor) -> None:
    """Shape checks (no device synchronisation)."""
    if hyp.dim() != 2 or ref.dim() != 2:
        raise ValueError(f"expected 2-d (N, T) token tensors, got {tuple(hyp.shape)} and {tuple(ref.shape)}")
    n = hyp.shape[0]
    if ref.shape[0] != n or hyp_len.shape != (n,) or ref_len.shape != (n,):
        raise ValueError(
            f"row counts differ: hyp {tuple(hyp.shape)}, hyp_len {tuple(hyp_len.shape)}, "
            f"ref {tuple(ref.shape)}, ref_len {tuple(ref_len.shape)}"
        )


def length_mask(lengths: Tensor, width: int) -> Tensor:
    """``(N,)`` lengths -> ``(N, width)`` bool, True at positions ``< length``."""
    return torch.arange(width, device=lengths.device) < lengths[:, None]


def pad_to(x: Tensor, width: int, value: int = PAD_ID) -> Tensor:
    """Right-pad (with ``value``) or truncate the time axis of ``x (N, T)`` to ``(N, width)``."""
    t = x.shape[1]
    if t >= width:
        return x[:, :width]
    return torch.cat([x, x.new_full((x.shape[0], width - t), value)], dim=1)


def completion_width(prefix_width: int, ref_width: int, max_len: int) -> int:
    """Width ``L`` of an oracle output whose completion is at most ``ref_width`` tokens."""
    return max(prefix_width, min(max_len, prefix_width + ref_width))


def splice(
    prefix: Tensor, prefix_len: Tensor, ref: Tensor, start: Tensor, count: Tensor, width: int
) -> tuple[Tensor, Tensor]:
    """Row n = ``prefix[n, :prefix_len[n]] + ref[n, start[n] : start[n] + count[n]]``, PAD after.

    prefix ``(N, P)``, ref ``(N, T')``, prefix_len/start/count ``(N,)`` -> ``(seq (N, width), seq_len (N,))``.
    ``width`` must be at least ``prefix_len + count`` on every row.
    """
    pos = torch.arange(width, device=prefix.device)[None, :]  # (1, L)
    ref = pad_to(ref, max(ref.shape[1], 1))  # gather needs one column even for empty references
    src = (start[:, None] + pos - prefix_len[:, None]).clamp(0, ref.shape[1] - 1)  # (N, L)
    from_ref = ref.gather(1, src)
    seq_len = prefix_len + count
    seq = torch.where(pos < prefix_len[:, None], pad_to(prefix, width), from_ref)
    seq = torch.where(pos < seq_len[:, None], seq, torch.full_like(seq, PAD_ID))
    return seq, seq_len


def pad_sequences(seqs: Sequence[Sequence[int]], device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
    """Lists of ids -> ``(ids (N, T) long`` padded with PAD, ``lengths (N,) long)``."""
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    width = int(lengths.max()) if len(seqs) else 0
    out = torch.full((len(seqs), width), PAD_ID, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.as_tensor(list(s), dtype=torch.long)
    return out.to(device), lengths.to(device)
