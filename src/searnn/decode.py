"""Greedy and beam decoding for any model that follows :mod:`searnn.protocol`.

``tokens, lengths = searnn.decode.greedy(model, src, src_len)``: tokens ``(B, L)`` long (PAD after each of
``lengths (B,)``; no BOS/EOS), the model in eval mode and without gradient for the call (its mode is
restored). ``max_len``: an ``(B,)`` long budget or an int cap (default ``2 * src_len + 10``; exactly
``src_len`` with ``fixed_length``, which also blocks EOS). :func:`to_lists` turns the result into lists.
The decoders themselves (from any state, with the model's fast paths when it has them) are
:func:`searnn.decoding.greedy` and :func:`searnn.decoding.beam_search`.
"""

from __future__ import annotations

import torch

from searnn.decoding.batch import default_max_len
from searnn.decoding.beam import beam_search
from searnn.decoding.greedy import greedy as greedy_from_state
from searnn.protocol import as_searnn_model


def _budget(src_len: torch.Tensor, fixed_length: bool, max_len: torch.Tensor | int | None) -> torch.Tensor:
    if isinstance(max_len, torch.Tensor):
        return max_len.long()
    return default_max_len(src_len, fixed_length, max_len)


def _device(model: torch.nn.Module, like: torch.Tensor) -> torch.device:
    param = next(iter(model.parameters()), None)
    return param.device if param is not None else like.device


def greedy(
    model: torch.nn.Module, src: torch.Tensor, src_len: torch.Tensor, max_len: torch.Tensor | int | None = None,
    fixed_length: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Argmax decoding of a batch: tokens ``(B, L)`` long and lengths ``(B,)`` (see the module docstring)."""
    return beam(model, src, src_len, 1, max_len, fixed_length)


def beam(
    model: torch.nn.Module, src: torch.Tensor, src_len: torch.Tensor, beam_size: int = 4,
    max_len: torch.Tensor | int | None = None, fixed_length: bool = False, len_norm: float = 0.6,
    len_norm_mode: str = "gnmt",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Beam search of a batch (``beam_size`` 1 is :func:`greedy`); length normalisation ``len_norm`` (alpha,
    :func:`searnn.decoding.beam.length_penalty`). Returns tokens ``(B, L)`` long and lengths ``(B,)``."""
    wrapped = as_searnn_model(model)
    device = _device(model, src)
    src, src_len = src.to(device), src_len.to(device).long()
    budget = _budget(src_len, fixed_length, max_len).to(device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            enc = wrapped.encode(src, src_len)
            state = wrapped.init_state(enc)
            if beam_size <= 1:
                return greedy_from_state(wrapped, enc, state, budget, fixed_length)
            return beam_search(wrapped, enc, state, beam_size, budget, fixed_length, len_norm, len_norm_mode)
    finally:
        model.train(was_training)


def to_lists(tokens: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]:
    """Decoded ``tokens (B, L)``, ``lengths (B,)`` as one list of ids per example."""
    rows = tokens.cpu().tolist()
    return [row[:n] for row, n in zip(rows, lengths.cpu().tolist(), strict=True)]
