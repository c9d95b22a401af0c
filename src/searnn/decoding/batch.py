"""Decode a whole :class:`~searnn.data.batch.Batch` (evaluation and prediction)."""

from __future__ import annotations

import torch

from searnn.data.batch import Batch
from searnn.decoding.beam import beam_search
from searnn.decoding.greedy import greedy
from searnn.models.seq2seq import Seq2Seq


def default_max_len(src_len: torch.Tensor, fixed_length: bool, max_len: int | None = None) -> torch.Tensor:
    """``(B,)`` long output budget per example.

    Fixed-length tasks: exactly ``src_len`` (``max_len`` is ignored: the output must match the source).
    Otherwise ``2 * src_len + 10``, capped at ``max_len`` when given.
    """
    src_len = src_len.long()
    if fixed_length:
        return src_len.clone()
    budget = 2 * src_len + 10
    if max_len is not None:
        budget = budget.clamp(max=int(max_len))
    return budget


@torch.no_grad()
def decode_batch_tensors(
    model: Seq2Seq,
    batch: Batch,
    fixed_length: bool,
    beam: int = 1,
    max_len: int | None = None,
    len_norm: float = 0.6,
    len_norm_mode: str = "gnmt",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode ``batch`` (moved to the model's device): tokens ``(B, L)`` long, PAD after ``lengths (B,)``.

    ``beam == 1`` is greedy decoding; ``beam > 1`` beam search with length normalisation ``len_norm``
    (alpha; see :func:`searnn.decoding.beam.length_penalty`). Put the model in eval mode first (the
    caller's responsibility; this function does not change the model's mode).
    """
    device = next(model.parameters()).device
    batch = batch.to(device)
    enc = model.encode(batch.src, batch.src_len)
    state = model.init_state(enc)
    budget = default_max_len(batch.src_len, fixed_length, max_len)
    if beam <= 1:
        return greedy(model, enc, state, budget, fixed_length)
    return beam_search(model, enc, state, beam, budget, fixed_length, len_norm, len_norm_mode)


def decode_batch(
    model: Seq2Seq,
    batch: Batch,
    fixed_length: bool,
    beam: int = 1,
    max_len: int | None = None,
    len_norm: float = 0.6,
    len_norm_mode: str = "gnmt",
) -> list[list[int]]:
    """Like :func:`decode_batch_tensors`, as one list of token ids (no EOS) per example, in batch order."""
    tokens, lengths = decode_batch_tensors(model, batch, fixed_length, beam, max_len, len_norm, len_norm_mode)
    rows = tokens.cpu().tolist()
    return [row[:n] for row, n in zip(rows, lengths.cpu().tolist(), strict=True)]
