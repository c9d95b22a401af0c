"""Exploration: which cells and which tokens of the roll-in are rolled out (docs/METHODS.md §2.3).

Everything is a boolean mask built with vectorised tensor operations (no loop over examples, cells or
tokens):

* cells ``(B, T)``: all roll-in cells, or ``num_cells`` random cells per sequence drawn without
  replacement **plus** the last token cell and the EOS cell (the last cell of the roll-in);
* tokens ``(B, T, V)``: all tokens, or the forced tokens (reference token at that position, reference
  tokens within ``+-gt_neighbors`` positions, EOS for variable-length outputs) plus ``num_tokens``
  other tokens drawn without replacement by one of the samplers below.

Samplers (paper Table 2) all use the Gumbel-top-k trick: the ``k`` largest of ``log w(a) + G(a)``, with
``G`` i.i.d. standard Gumbel noise, are a sample of ``k`` tokens without replacement from the
distribution proportional to ``w`` (it is robust to probabilities that underflow to zero, unlike
``torch.multinomial`` without replacement):

* ``uniform``: ``w`` uniform;
* ``policy``: ``w = softmax(logits)``, the current policy;
* ``biased``: ``w = softmax(logits / temperature)`` with ``temperature > 1``, a flattened policy that
  boosts low-probability tokens;
* ``topk``: the ``k`` highest logits (no noise).
"""

from __future__ import annotations

import torch

from searnn.data.vocab import EOS_ID

SAMPLERS = ("all", "uniform", "policy", "biased", "topk")
"""Token sub-sampling strategies (``SearnnConfig.sample_tokens``)."""


def select_cells(valid: torch.Tensor, forced: torch.Tensor, num_cells: int) -> torch.Tensor:
    """Cells to roll out.

    valid: ``(B, T)`` bool, the roll-in cells; forced: ``(B, T)`` bool, cells always kept (within
    ``valid``); num_cells: number of extra random cells per sequence (0 = every valid cell). Returns
    ``(B, T)`` bool: ``forced`` plus ``min(num_cells, #other valid cells)`` other valid cells drawn
    uniformly without replacement.
    """
    if num_cells <= 0:
        return valid.clone()
    forced = forced & valid
    free = valid & ~forced
    keys = torch.rand(valid.shape, device=valid.device)
    keys = torch.where(free, keys, torch.full_like(keys, 2.0))  # non-free cells sort last
    order = keys.argsort(dim=1)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(valid.shape[1], device=valid.device).expand_as(order).contiguous())
    return forced | (free & (rank < num_cells))


def last_cells(cells: torch.Tensor, width: int) -> torch.Tensor:
    """``(B, T)`` bool: the last token cell (``cells - 2``) and the EOS cell (``cells - 1``) of each
    roll-in of ``cells (B,)`` cells."""
    t = torch.arange(width, device=cells.device)[None, :]
    return (t == cells[:, None] - 1) | (t == cells[:, None] - 2)


def extended_reference(tgt: torch.Tensor, tgt_len: torch.Tensor, width: int) -> torch.Tensor:
    """The reference token by position, ``(B, width)`` long: ``tgt[b, t]`` for ``t < tgt_len - 1``
    (the tokens) and EOS from the EOS cell on (also beyond the batch's padded width)."""
    b, t_tgt = tgt.shape
    out = torch.full((b, width), EOS_ID, dtype=torch.long, device=tgt.device)
    n = min(width, t_tgt)
    pos = torch.arange(n, device=tgt.device)[None, :]
    out[:, :n] = torch.where(pos < (tgt_len[:, None] - 1), tgt[:, :n], out[:, :n])
    return out


def forced_tokens(
    ext_ref: torch.Tensor,
    ref_len: torch.Tensor,
    width: int,
    vocab_size: int,
    neighbors: int = 0,
    add_eos: bool = False,
) -> torch.Tensor:
    """Tokens always rolled out, ``(B, width, V)`` bool.

    ext_ref: ``(B, W)`` long with ``W >= width`` (see :func:`extended_reference`); ref_len: ``(B,)``
    number of reference tokens (without EOS). Cell t gets ``ext_ref[b, t]`` (the reference token at that
    position, EOS from position ``ref_len`` on), the reference tokens/EOS at positions ``t+d`` for
    ``0 < |d| <= neighbors`` with ``0 <= t+d <= ref_len``, and EOS if ``add_eos``.
    """
    b = ext_ref.shape[0]
    device = ext_ref.device
    # One spare column (index V) receives the out-of-range neighbours, then is dropped.
    mask = torch.zeros(b, width, vocab_size + 1, dtype=torch.bool, device=device)
    t = torch.arange(width, device=device)[None, :].expand(b, width)
    for d in range(-neighbors, neighbors + 1):  # loop over offsets, not over cells
        pos = t + d
        ok = (pos >= 0) & (pos <= ref_len[:, None]) & (pos < ext_ref.shape[1])
        if d == 0:
            ok = torch.ones_like(ok)
        tok = ext_ref.gather(1, pos.clamp(0, ext_ref.shape[1] - 1))
        tok = torch.where(ok, tok, torch.full_like(tok, vocab_size))
        mask.scatter_(2, tok[:, :, None], True)
    mask = mask[:, :, :vocab_size]
    if add_eos:
        mask[:, :, EOS_ID] = True
    return mask


def sample_tokens(
    mode: str,
    num_tokens: int,
    forced: torch.Tensor,
    logits: torch.Tensor | None = None,
    temperature: float = 1.0,
    exclude: tuple[int, ...] = (),
) -> torch.Tensor:
    """Tokens to roll out at every cell, ``(B, T, V)`` bool.

    mode: one of :data:`SAMPLERS`; forced: ``(B, T, V)`` bool, always included; logits: ``(B, T, V)``
    roll-in scores (needed by ``policy``, ``biased``, ``topk``; not differentiated); exclude: token ids
    never drawn (they may still be forced). The result is ``forced`` plus
    ``min(num_tokens, #drawable)`` other tokens per cell drawn without replacement, the drawable tokens
    being those neither forced nor excluded. ``all`` returns every token of the vocabulary.
    """
    if mode not in SAMPLERS:
        raise ValueError(f"unknown token sampler {mode!r}; valid: {', '.join(SAMPLERS)}")
    if mode == "all":
        return torch.ones_like(forced)
    shape = forced.shape
    device = forced.device
    if mode == "uniform":
        keys = _gumbel(shape, device)
    else:
        if logits is None:
            raise ValueError(f"token sampler {mode!r} needs the roll-in logits")
        scores = logits.detach().float()
        if mode == "topk":
            keys = scores
        elif mode == "policy":
            keys = scores.log_softmax(-1) + _gumbel(shape, device)
        else:  # biased
            keys = (scores / temperature).log_softmax(-1) + _gumbel(shape, device)
    keys = keys.masked_fill(forced, float("-inf"))
    for token in exclude:  # one column at a time: a list index would be a host->device copy on a GPU
        keys[..., token] = float("-inf")
    k = min(num_tokens, shape[-1])
    chosen = torch.zeros_like(forced)
    if k > 0:
        top_keys, top = keys.topk(k, dim=-1)
        chosen.scatter_(-1, top, top_keys > float("-inf"))  # fewer drawable tokens than k: skip the rest
    return chosen | forced


def _gumbel(shape: torch.Size, device: torch.device) -> torch.Tensor:
    """Standard Gumbel noise ``-log(E)``, ``E ~ Exp(1)``."""
    return -torch.empty(shape, device=device).exponential_().log()
