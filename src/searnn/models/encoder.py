"""RNN encoder over token streams or feature vectors."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from searnn.data.vocab import PAD_ID
from searnn.models.config import ModelConfig


def make_rnn(cell: str, input_size: int, hidden: int, **kwargs: object) -> nn.RNNBase:
    """``nn.GRU`` or ``nn.LSTM`` with ``batch_first=True``."""
    cls = nn.GRU if cell == "gru" else nn.LSTM
    return cls(input_size, hidden, batch_first=True, **kwargs)  # type: ignore[arg-type]


class Encoder(nn.Module):
    """Source embedding + (bi)directional multi-layer RNN over packed variable-length sequences.

    Token sources ``(B, S, K)`` long: K embeddings of size ``emb_dim`` (one per stream, e.g. words and
    POS tags), concatenated to ``K * emb_dim``. Feature sources ``(B, S, F)`` float: a Linear ``F -> emb_dim``.
    Dropout on the embedded input and between RNN layers.
    """

    def __init__(self, cfg: ModelConfig, src_vocab_sizes: list[int], src_feature_dim: int | None):
        super().__init__()
        self.cfg = cfg
        self.features = bool(src_feature_dim)
        if self.features:
            self.proj = nn.Linear(int(src_feature_dim), cfg.emb_dim)  # type: ignore[arg-type]
            in_dim = cfg.emb_dim
        else:
            if not src_vocab_sizes:
                raise ValueError("token sources need at least one source vocabulary")
            self.embeddings = nn.ModuleList(
                nn.Embedding(v, cfg.emb_dim, padding_idx=PAD_ID) for v in src_vocab_sizes
            )
            in_dim = cfg.emb_dim * len(src_vocab_sizes)
        self.dropout = nn.Dropout(cfg.dropout)
        self.rnn = make_rnn(
            cfg.cell,
            in_dim,
            cfg.hidden,
            num_layers=cfg.enc_layers,
            bidirectional=cfg.bidirectional,
            dropout=cfg.dropout if cfg.enc_layers > 1 else 0.0,
        )
        self.num_dirs = 2 if cfg.bidirectional else 1
        self.out_dim = cfg.hidden * self.num_dirs

    def embed(self, src: torch.Tensor) -> torch.Tensor:
        """``(B, S, K)`` long or ``(B, S, F)`` float -> ``(B, S, E_in)``."""
        if self.features:
            x = self.proj(src.float())
        else:
            if src.dim() == 2:
                src = src.unsqueeze(-1)
            if src.shape[-1] != len(self.embeddings):
                raise ValueError(f"source has {src.shape[-1]} streams, model expects {len(self.embeddings)}")
            x = torch.cat([emb(src[..., k]) for k, emb in enumerate(self.embeddings)], dim=-1)
        return self.dropout(x)

    def forward(
        self, src: torch.Tensor, src_len: torch.Tensor, host_len: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Returns memory ``(B, S, H_enc)`` (zeros past each length), ``h_final (L, B, H_enc)`` and
        ``c_final`` (LSTM) with the two directions of a layer concatenated.

        host_len: ``(B,)`` the lengths on the CPU, when known (``Batch.src_len_host``): the packing order is then
        computed on the host and moved without blocking, so that encoding makes no host synchronisation on a
        device (``pack_padded_sequence`` would copy ``src_len`` to the host and its order back). Same values."""
        b, s = src.shape[0], src.shape[1]
        x = self.embed(src)
        if host_len is None:
            packed = pack_padded_sequence(x, src_len.detach().cpu(), batch_first=True, enforce_sorted=False)
            out, hidden = self.rnn(packed)
            memory, _ = pad_packed_sequence(out, batch_first=True, total_length=s)
        else:
            memory, hidden = self._run_host_sorted(x, host_len, s)
        if isinstance(hidden, tuple):
            h, c = hidden
        else:
            h, c = hidden, None

        def merge(t: torch.Tensor) -> torch.Tensor:
            # (L * dirs, B, H) -> (L, B, dirs * H), forward direction first
            t = t.view(self.cfg.enc_layers, self.num_dirs, b, self.cfg.hidden)
            return torch.cat(list(t.unbind(1)), dim=-1)

        return memory, merge(h), None if c is None else merge(c)

    def _run_host_sorted(
        self, x: torch.Tensor, host_len: torch.Tensor, s: int
    ) -> tuple[torch.Tensor, torch.Tensor | tuple[torch.Tensor, torch.Tensor]]:
        """The packed RNN over ``x (B, S, E)`` sorted by the host lengths ``host_len (B,)`` (the order
        ``pack_padded_sequence`` uses), memory and final states put back in batch order."""
        lengths, order = torch.sort(host_len.long(), descending=True)  # on the host
        inverse = torch.empty_like(order).scatter_(0, order, torch.arange(order.numel()))
        order_d = order.to(x.device, non_blocking=True)
        inverse_d = inverse.to(x.device, non_blocking=True)
        packed = pack_padded_sequence(x.index_select(0, order_d), lengths, batch_first=True, enforce_sorted=True)
        out, hidden = self.rnn(packed)
        memory, _ = pad_packed_sequence(out, batch_first=True, total_length=s)
        memory = memory.index_select(0, inverse_d)
        if isinstance(hidden, tuple):
            return memory, (hidden[0].index_select(1, inverse_d), hidden[1].index_select(1, inverse_d))
        return memory, hidden.index_select(1, inverse_d)
