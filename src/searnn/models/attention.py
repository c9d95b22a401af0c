"""Luong-placement attention (after the decoder RNN) with additive or multiplicative scores."""

from __future__ import annotations

import torch
from torch import nn

from searnn.models.functional import tanh_


class Attention(nn.Module):
    """Scores between decoder queries h and encoder memory m, masked by source length.

    additive: ``e = v . tanh(W_c m + W_q h)`` (Bahdanau et al. 2015 scores; ``W_c m`` precomputed
    once per batch as the keys); multiplicative: ``e = h^T W m`` (Luong et al. 2015 "general"; ``W m``
    precomputed as the keys). Context ``c = sum_s softmax(e)_s m_s``.
    """

    def __init__(self, kind: str, mem_dim: int, query_dim: int, attn_dim: int):
        super().__init__()
        self.kind = kind
        if kind == "additive":
            self.key_proj = nn.Linear(mem_dim, attn_dim, bias=False)
            self.query_proj = nn.Linear(query_dim, attn_dim)
            self.v = nn.Linear(attn_dim, 1, bias=False)
        elif kind == "multiplicative":
            self.key_proj = nn.Linear(mem_dim, query_dim, bias=False)
        else:
            raise ValueError(f"unknown attention {kind!r}")
        self._work: torch.Tensor | None = None  # workspace of _sum (not a parameter or buffer)

    def _sum(self, keys: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """``keys[:, None] + q[:, :, None]``, ``(G, M, S, A)``. Without autograd (decoding, roll-outs) it is
        written into a workspace kept between calls: a fresh tensor of this size costs more in page faults
        on CPU (one per 4 KiB page, ~10x the add itself) than the add; same values either way."""
        g, m, s_len, a = keys.shape[0], q.shape[1], keys.shape[1], keys.shape[2]
        if torch.is_grad_enabled() and (keys.requires_grad or q.requires_grad):
            return keys.unsqueeze(1) + q.unsqueeze(2)
        size = g * m * s_len * a
        work = self._work
        if work is None or work.numel() < size or work.dtype != q.dtype or work.device != q.device:
            work = torch.empty(size, dtype=q.dtype, device=q.device)
            self._work = work
        out = work[:size].view(g, m, s_len, a)
        return torch.add(keys.unsqueeze(1), q.unsqueeze(2), out=out)

    def keys(self, memory: torch.Tensor) -> torch.Tensor:
        """``(B, S, H_enc) -> (B, S, A)``, computed once per encoded batch."""
        return self.key_proj(memory)

    def forward(
        self, query: torch.Tensor, memory: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """Grouped attention: G groups of M queries each against the G memories.

        query: ``(G, M, H)``; memory: ``(G, S, H_enc)``; keys: ``(G, S, A)``; mask: ``(G, S)`` bool.
        Returns the context ``(G, M, H_enc)``.
        """
        if self.kind == "additive":
            q = self.query_proj(query)  # (G, M, A)
            # (G, M, S, A): the one inherently large tensor of additive attention; tanh in place
            # (autograd-safe: the sum's backward needs neither operand nor output)
            hidden = tanh_(self._sum(keys, q))
            scores = hidden.matmul(self.v.weight.squeeze(0))  # (G, M, S)
        else:
            scores = torch.bmm(query, keys.transpose(1, 2))  # (G, M, S)
        scores = scores.masked_fill(~mask.unsqueeze(1), torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=-1)
        return torch.bmm(weights, memory)  # (G, M, H_enc)
