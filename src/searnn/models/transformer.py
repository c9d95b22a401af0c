"""Transformer encoder-decoder on the step protocol (:mod:`searnn.protocol`).

Pre-LayerNorm blocks (Xiong et al. 2020): ``x = x + dropout(sublayer(LN(x)))`` for self-attention, cross-
attention (decoder) and the feed-forward block ``W_2 relu(W_1 x)``, a final LayerNorm on each side; sinusoidal
positions (Vaswani et al. 2017) added to the embeddings scaled by ``sqrt(d)``; the output projection optionally
tied to the target embedding (``tie_embeddings``). Width ``d = cfg.hidden``, ``cfg.heads`` heads,
``cfg.enc_layers`` / ``cfg.dec_layers`` blocks, feed-forward size ``cfg.ffn_dim``, dropout ``cfg.dropout`` on the
embeddings and on every residual branch. Sources: token streams ``(B, S, K)`` (one embedding of size d per
stream, summed) or float features ``(B, S, F)`` (a Linear ``F -> d``, e.g. OCR pixels). ``aligned_input``
(fixed-length tasks) adds a projection of the encoder output at the decoder position to the decoder input.

Incremental decoding. :class:`TransformerState` holds each row's self-attention key/value cache
``(L, N, heads, P, d_head)`` with a validity mask ``(N, P)``: ``index`` branches the cache rows (roll-outs, beam
search). Keys carry their position in their values (positions are added to the inputs), so a cache may hold
invalid columns anywhere: states of different lengths concatenate by padding. The encoder's cross-attention
keys and values are computed once per batch (:class:`TransformerEncoded`) and read through each row's
``batch_idx`` with the grouped layout of :class:`searnn.models.state.RowLayout` (never copied per row).
``step_shared`` (the first step of SeaRNN roll-outs) attends from the N candidate rows to the U shared cache
rows with the same grouping, instead of copying the cache for each candidate before attending.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from searnn.data.vocab import PAD_ID
from searnn.models.config import ModelConfig
from searnn.models.state import RowLayout, row_layout, static_shapes_active
from searnn.profiling import region

Projection = Callable[[torch.Tensor], torch.Tensor]


def sinusoids(length: int, dim: int, device: torch.device | None = None) -> torch.Tensor:
    """``(length, dim)`` sinusoidal position encodings: ``sin(p / 10000^(2i/d))`` at 2i, ``cos`` at 2i+1."""
    pos = torch.arange(length, dtype=torch.float32, device=device)[:, None]
    rate = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32, device=device) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim, device=device)
    table[:, 0::2] = torch.sin(pos * rate)
    table[:, 1::2] = torch.cos(pos * rate)[:, : dim // 2]
    return table


@dataclass
class TransformerEncoded:
    """Encoder output of B examples: memory ``(B, S, d)`` (zeros at padding), mask ``(B, S)`` bool,
    cross-attention keys / values of every decoder layer ``(L_dec, B, heads, S, d_head)``, src_len ``(B,)``."""

    memory: torch.Tensor
    mask: torch.Tensor
    cross_k: torch.Tensor
    cross_v: torch.Tensor
    src_len: torch.Tensor

    @property
    def batch_size(self) -> int:
        return int(self.memory.shape[0])


@dataclass
class TransformerState:
    """N decoder rows: keys / values ``(L, N, heads, C, d_head)`` (the self-attention cache; its first P columns
    hold the state, P = ``valid.shape[1]``, C >= P), valid ``(N, P)`` bool (cache columns that hold a token),
    pos ``(N,)`` long (tokens consumed: the next input's position), batch_idx ``(N,)`` long. ``layout``: the
    cached cross-attention :class:`RowLayout` of ``batch_idx``.

    Spare capacity (C > P, without autograd only): ``fill`` is a one-item list shared by the states of one
    buffer, the number of its columns written so far. A step from a state whose P equals ``fill`` writes the new
    column in place (no copy of the cache); any other state (an older one, a sibling) copies the cache first,
    so states stay immutable values."""

    keys: torch.Tensor
    values: torch.Tensor
    valid: torch.Tensor
    pos: torch.Tensor
    batch_idx: torch.Tensor
    layout: RowLayout | None = field(default=None, repr=False, compare=False)
    fill: list[int] | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return int(self.batch_idx.shape[0])

    @property
    def width(self) -> int:
        """P, the cache columns of this state."""
        return int(self.valid.shape[1])

    def cache(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values ``(L, N, heads, P, d_head)`` (views of the first P columns)."""
        p = self.width
        return self.keys[:, :, :, :p], self.values[:, :, :, :p]

    def index(self, idx: torch.Tensor) -> TransformerState:
        """Rows ``idx (M,)`` long (repeats branch a row's cache; a bool mask ``(N,)`` also works)."""
        idx = idx.to(self.batch_idx.device)
        if idx.dtype == torch.bool:
            idx = idx.nonzero().squeeze(1)
        keys, values = self.cache()
        return TransformerState(
            keys.index_select(1, idx), values.index_select(1, idx), self.valid.index_select(0, idx),
            self.pos.index_select(0, idx), self.batch_idx.index_select(0, idx),
        )

    def head(self, k: int) -> TransformerState:
        """The first ``k`` rows, as views."""
        return TransformerState(
            self.keys[:, :k], self.values[:, :k], self.valid[:k], self.pos[:k], self.batch_idx[:k], fill=self.fill
        )

    @classmethod
    def cat(cls, states: Sequence[TransformerState]) -> TransformerState:
        """Rows of several states; caches of different widths are padded with invalid columns."""
        if not states:
            raise ValueError("TransformerState.cat needs at least one state")
        width = max(s.width for s in states)

        def pad(x: torch.Tensor, dim: int) -> torch.Tensor:
            extra = width - x.shape[dim]
            if extra == 0:
                return x
            shape = list(x.shape)
            shape[dim] = extra
            return torch.cat([x, x.new_zeros(shape)], dim=dim)

        return cls(
            torch.cat([pad(s.cache()[0], 3) for s in states], 1), torch.cat([pad(s.cache()[1], 3) for s in states], 1),
            torch.cat([pad(s.valid, 1) for s in states], 0), torch.cat([s.pos for s in states]),
            torch.cat([s.batch_idx for s in states]),
        )

    def detach(self) -> TransformerState:
        keys, values = self.cache()
        return TransformerState(keys.detach(), values.detach(), self.valid, self.pos, self.batch_idx, self.layout)

    def to(self, device: torch.device | str) -> TransformerState:
        keys, values = self.cache()
        return TransformerState(
            keys.to(device), values.to(device), self.valid.to(device), self.pos.to(device), self.batch_idx.to(device)
        )

    def get_layout(self, num_examples: int) -> RowLayout:
        """The cross-attention layout of this state's rows (built once, passed on by ``step``)."""
        if self.layout is None or self.layout.num_examples != num_examples:
            self.layout = row_layout(self.batch_idx, num_examples)
        return self.layout


def attend_rows(
    q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, rows: torch.Tensor,
    layout: RowLayout, extra: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Attention of N query rows over shared key rows: row n reads key row ``rows[n]``.

    q: ``(N, h, dh)``; keys, values: ``(U, h, S, dh)``; mask: ``(U, S)`` bool (True = attend); rows: ``(N,)``
    long; layout: :meth:`RowLayout.build` of ``rows`` over U. extra: one more key per row, its (already
    scaled) score ``(N, h)`` and value ``(N, h, dh)`` (the row's own new token). Returns ``(N, h, dh)``.
    The keys are never gathered per row except in the ``gather`` layout (very unbalanced rows).
    """
    n, h, dh = q.shape
    scale = 1.0 / math.sqrt(dh)
    if layout.mode == "gather":
        k, v, m = keys.index_select(0, rows), values.index_select(0, rows), mask.index_select(0, rows)
        scores = (q.unsqueeze(2) @ k.transpose(-1, -2)).squeeze(2) * scale  # (N, h, S)
        block = None
    else:
        if layout.mode == "identity":
            g, width, pos, k, v = n, 1, None, keys, values
        else:
            assert layout.pos is not None
            k, v, width, pos = keys, values, layout.width, layout.pos
            if layout.examples is not None:
                k, v = keys.index_select(0, layout.examples), values.index_select(0, layout.examples)
            g = k.shape[0]
        qb = q if pos is None else q.new_zeros(g * width, h, dh).index_copy(0, pos, q)
        qb = qb.view(g, width, h, dh).transpose(1, 2)  # (G, h, M, dh)
        sb = (qb @ k.transpose(-1, -2)) * scale  # (G, h, M, S)
        flat = sb.transpose(1, 2).reshape(g * width, h, -1)
        scores = flat if pos is None else flat.index_select(0, pos)  # (N, h, S)
        block = (g, width, pos, v)
        m = mask.index_select(0, rows)
    scores = scores.masked_fill(~m[:, None, :], float("-inf"))
    if extra is not None:
        scores = torch.cat([scores, extra[0].unsqueeze(2)], dim=2)
    w = torch.softmax(scores, dim=-1)
    s = m.shape[1]
    w_old = w[:, :, :s]
    if block is None:
        out = (w_old.unsqueeze(2) @ v).squeeze(2)  # (N, h, dh)
    else:
        g, width, pos, vb = block
        wb = w_old if pos is None else w_old.new_zeros(g * width, h, s).index_copy(0, pos, w_old)
        ob = wb.view(g, width, h, s).transpose(1, 2) @ vb  # (G, h, M, dh)
        flat = ob.transpose(1, 2).reshape(g * width, h, dh)
        out = flat if pos is None else flat.index_select(0, pos)
    if extra is not None:
        out = out + w[:, :, s:] * extra[1]
    return out


def _append(
    base: TransformerState, k: torch.Tensor, v: torch.Tensor, rows: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, list[int] | None]:
    """The cache of ``base`` (of its rows ``rows (N,)`` when given: a branch, as ``base.index(rows)``) with one
    more column ``k, v (L, N, heads, d_head)``: keys, values, fill (see :class:`TransformerState`). With
    autograd, a new tensor; without, written in place into spare capacity when ``base`` owns the buffer's next
    column, else into a new buffer with room for more columns (a branch always gets one, its rows gathered
    straight into it: one copy of the cache, not ``index`` then another)."""
    p = base.width
    if torch.is_grad_enabled() and (k.requires_grad or base.keys.requires_grad):
        keys, values = (base if rows is None else base.index(rows)).cache()
        return torch.cat([keys, k.unsqueeze(3)], 3), torch.cat([values, v.unsqueeze(3)], 3), None
    keys, values, fill = base.keys, base.values, base.fill
    if rows is not None or fill is None or fill[0] != p or keys.shape[3] <= p:
        old_k, old_v = base.cache()
        shape = list(old_k.shape)
        shape[1], shape[3] = int(k.shape[1]), p + max(8, p // 2)
        keys, values = old_k.new_empty(shape), old_v.new_empty(shape)
        if rows is None:
            keys[:, :, :, :p] = old_k
            values[:, :, :, :p] = old_v
        else:
            torch.index_select(old_k, 1, rows, out=keys[:, :, :, :p])
            torch.index_select(old_v, 1, rows, out=values[:, :, :, :p])
        fill = [p]
    keys[:, :, :, p] = k
    values[:, :, :, p] = v
    fill[0] = p + 1
    return keys, values, fill


class _Attention(nn.Module):
    """Multi-head attention projections: queries, keys, values and the output ``W_o``."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads, self.dh = heads, dim // heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.o = nn.Linear(dim, dim)

    def split(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., T, d) -> (..., heads, T, d_head)``."""
        return x.unflatten(-1, (self.heads, self.dh)).transpose(-2, -3)

    def full(self, x: torch.Tensor, kv: torch.Tensor | None, mask: torch.Tensor) -> torch.Tensor:
        """Attention over whole sequences: queries ``x (B, T, d)``, keys/values from ``kv (B, S, d)`` (x itself
        when None) or precomputed ``(k, v)``; mask broadcastable to ``(B, heads, T, S)`` bool. ``(B, T, d)``."""
        src = x if kv is None else kv
        k, v = self.split(self.k(src)), self.split(self.v(src))
        return self.mix(self.split(self.q(x)), k, v, mask)

    def mix(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``softmax(q k^T / sqrt(d_head)) v`` with ``mask``, heads merged and projected: ``(B, T, d)``."""
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(self.dh)
        w = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
        return self.o((w @ v).transpose(-2, -3).flatten(-2))


class _FeedForward(nn.Module):
    def __init__(self, dim: int, inner: int):
        super().__init__()
        self.w1 = nn.Linear(dim, inner)
        self.w2 = nn.Linear(inner, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.relu(self.w1(x)))


class _EncoderLayer(nn.Module):
    def __init__(self, dim: int, heads: int, inner: int, dropout: float):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = _Attention(dim, heads)
        self.ffn = _FeedForward(dim, inner)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x: ``(B, S, d)``; mask: ``(B, 1, 1, S)`` bool."""
        x = x + self.drop(self.attn.full(self.ln1(x), None, mask))
        return x + self.drop(self.ffn(self.ln2(x)))


class _DecoderLayer(nn.Module):
    def __init__(self, dim: int, heads: int, inner: int, dropout: float):
        super().__init__()
        self.ln1, self.ln2, self.ln3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.self_attn = _Attention(dim, heads)
        self.cross = _Attention(dim, heads)
        self.ffn = _FeedForward(dim, inner)
        self.drop = nn.Dropout(dropout)


class Transformer(nn.Module):
    """Transformer encoder-decoder following :mod:`searnn.protocol` (see the module docstring).

    ``src_vocab_sizes``: one size per source token stream (empty for feature sources); ``src_feature_dim``: F
    for float sources, else None; ``tgt_vocab_size``: V.
    """

    def __init__(self, cfg: ModelConfig, src_vocab_sizes: list[int], src_feature_dim: int | None, tgt_vocab_size: int):
        super().__init__()
        self.cfg = cfg
        self.tgt_vocab_size = tgt_vocab_size
        d = cfg.hidden
        self.dim = d
        self.features = bool(src_feature_dim)
        if self.features:
            self.src_proj = nn.Linear(int(src_feature_dim), d)  # type: ignore[arg-type]
        else:
            if not src_vocab_sizes:
                raise ValueError("token sources need at least one source vocabulary")
            self.src_embeddings = nn.ModuleList(nn.Embedding(v, d, padding_idx=PAD_ID) for v in src_vocab_sizes)
        self.tgt_embedding = nn.Embedding(tgt_vocab_size, d, padding_idx=PAD_ID)
        self.enc_layers = nn.ModuleList(
            _EncoderLayer(d, cfg.heads, cfg.ffn_dim, cfg.dropout) for _ in range(cfg.enc_layers)
        )
        self.dec_layers = nn.ModuleList(
            _DecoderLayer(d, cfg.heads, cfg.ffn_dim, cfg.dropout) for _ in range(cfg.dec_layers)
        )
        self.enc_norm, self.dec_norm = nn.LayerNorm(d), nn.LayerNorm(d)
        self.align: nn.Linear | None = nn.Linear(d, d, bias=False) if cfg.aligned_input else None
        self.dropout = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(d, tgt_vocab_size)
        self.heads, self.dh = cfg.heads, d // cfg.heads
        self.reset_parameters()
        if cfg.tie_embeddings:
            self.out.weight = self.tgt_embedding.weight
        self.register_buffer("positions", sinusoids(512, d), persistent=False)

    def reset_parameters(self) -> None:
        """Xavier-uniform Linear weights, zero biases; embeddings ``N(0, d^-1/2)`` (PAD rows zero)."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=self.dim**-0.5)
                with torch.no_grad():
                    module.weight[PAD_ID].zero_()

    def num_parameters(self, trainable_only: bool = True) -> int:
        """Number of (trainable) scalar parameters (a tied matrix counts once)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def _pos(self, idx: torch.Tensor) -> torch.Tensor:
        """Position encodings of positions ``idx`` (any shape) -> ``idx.shape + (d,)``; grows the table (not in the
        static-shape search, which reserves its positions on the host first: :meth:`reserve_positions`)."""
        if static_shapes_active():
            return self.positions[idx]
        top = int(idx.max()) + 1 if idx.numel() else 0
        if top > self.positions.shape[0]:
            table = sinusoids(max(top, 2 * self.positions.shape[0]), self.dim, self.positions.device)
            self.positions = table.to(self.positions.dtype)
        return self.positions[idx]

    def reserve_positions(self, length: int) -> None:
        """Grow the position table to at least ``length`` positions (a host-known bound), as :meth:`_pos` would."""
        if length > self.positions.shape[0]:
            table = sinusoids(max(length, 2 * self.positions.shape[0]), self.dim, self.positions.device)
            self.positions = table.to(self.positions.dtype)

    # ------------------------------------------------------------------ encoder

    def encode(self, src: torch.Tensor, src_len: torch.Tensor) -> TransformerEncoded:
        """src: ``(B, S, K)`` long or ``(B, S, F)`` float; src_len: ``(B,)`` long, all >= 1."""
        if self.features:
            x = self.src_proj(src.float())
        else:
            x = sum(emb(src[..., k]) for k, emb in enumerate(self.src_embeddings)) * math.sqrt(self.dim)
        b, s = x.shape[:2]
        src_len = src_len.to(x.device)
        mask = torch.arange(s, device=x.device)[None, :] < src_len[:, None]  # (B, S)
        x = self.dropout(x + self._pos(torch.arange(s, device=x.device)))
        for layer in self.enc_layers:
            x = layer(x, mask[:, None, None, :])
        memory = self.enc_norm(x) * mask[..., None]
        ks = [layer.cross.split(layer.cross.k(memory)) for layer in self.dec_layers]
        vs = [layer.cross.split(layer.cross.v(memory)) for layer in self.dec_layers]
        return TransformerEncoded(memory, mask, torch.stack(ks), torch.stack(vs), src_len)

    def _aligned(self, enc: TransformerEncoded, batch_idx: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """``(N, d)`` projection of the encoder output at each row's position (zeros past the source end)."""
        assert self.align is not None
        padded = F.pad(enc.memory, (0, 0, 0, 1))
        return self.align(padded[batch_idx, pos.clamp(max=enc.memory.shape[1])])

    def _inputs(self, tokens: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """Decoder input embeddings (before dropout): ``sqrt(d) E[tokens] + PE[pos]``."""
        return self.tgt_embedding(tokens) * math.sqrt(self.dim) + self._pos(pos)

    # ------------------------------------------------------------------ protocol

    def init_state(self, enc: TransformerEncoded) -> TransformerState:
        """B rows with empty caches, ``batch_idx = arange(B)``."""
        b, dev = enc.batch_size, enc.memory.device
        empty = enc.memory.new_zeros(len(self.dec_layers), b, self.heads, 0, self.dh)
        idx = torch.arange(b, device=dev)
        return TransformerState(empty, empty.clone(), torch.zeros(b, 0, dtype=torch.bool, device=dev),
                                torch.zeros_like(idx), idx)

    def step(
        self, enc: TransformerEncoded, state: TransformerState, tokens: torch.Tensor
    ) -> tuple[torch.Tensor, TransformerState]:
        """One step for N rows: feed ``tokens (N,)``, return logits ``(N, V)`` and the state with the tokens'
        keys and values appended to the cache."""
        o, new = self._step(enc, state, tokens, None)
        return self.out(self.dropout(o)), new

    def step_shared(
        self, enc: TransformerEncoded, state: TransformerState, tokens: torch.Tensor, rows: torch.Tensor,
        project: Projection | None = None,
    ) -> tuple[torch.Tensor, TransformerState]:
        """:meth:`step` for N rows branching from the U rows of ``state`` (row n continues ``rows[n]``): equal to
        ``step(enc, state.index(rows), tokens)`` up to rounding; the self-attention reads the U shared caches
        grouped by row (no per-candidate copy before attending). ``project``: eval mode, replaces ``self.out``."""
        o, new = self._step(enc, state, tokens, rows)
        return (self.out(self.dropout(o)) if project is None else project(o)), new

    def token_gates(self) -> torch.Tensor:
        """``(V, d)`` scaled target embeddings ``sqrt(d) E``: the per-token table of :meth:`step_cached`."""
        return self.tgt_embedding.weight * math.sqrt(self.dim)

    def step_cached(
        self, enc: TransformerEncoded, state: TransformerState, tokens: torch.Tensor, gates: torch.Tensor,
        project: Projection | None = None,
    ) -> tuple[torch.Tensor, TransformerState]:
        """:meth:`step` with the embedding looked up in ``gates`` (:meth:`token_gates`); ``project`` as in
        :meth:`step_shared`."""
        o, new = self._step(enc, state, tokens, None, gates=gates)
        return (self.out(self.dropout(o)) if project is None else project(o)), new

    def _step(
        self, enc: TransformerEncoded, state: TransformerState, tokens: torch.Tensor, rows: torch.Tensor | None,
        gates: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, TransformerState]:
        """Top-layer output ``(N, d)`` (after the final LayerNorm) and the new state. ``rows``: shared-state
        branching (see :meth:`step_shared`), None = row n continues state row n. Profiled regions
        (:mod:`searnn.profiling`): ``decoder.self_attention`` (its projections included),
        ``decoder.cross_attention``, ``decoder.ffn`` and ``decoder.cache`` (branching and appending to the
        key / value cache)."""
        batch_idx = state.batch_idx if rows is None else state.batch_idx.index_select(0, rows)
        pos = state.pos if rows is None else state.pos.index_select(0, rows)
        emb = self.tgt_embedding(tokens) * math.sqrt(self.dim) if gates is None else gates.index_select(0, tokens)
        x = emb + self._pos(pos)
        if self.align is not None:
            x = x + self._aligned(enc, batch_idx, pos)
        x = self.dropout(x)
        layout = state.get_layout(enc.batch_size) if rows is None else row_layout(batch_idx, enc.batch_size)
        shared = None if rows is None else row_layout(rows, len(state))
        n = int(tokens.shape[0])
        p_old = state.width
        new_k, new_v = [], []
        for li, layer in enumerate(self.dec_layers):
            with region("decoder.self_attention"):
                a = layer.self_attn
                hq = layer.ln1(x)
                q = a.q(hq).view(n, self.heads, self.dh)
                k = a.k(hq).view(n, self.heads, self.dh)
                v = a.v(hq).view(n, self.heads, self.dh)
                own = (q * k).sum(-1) / math.sqrt(self.dh)  # (N, h): the row's own new token
                ck, cv = state.keys[li, :, :, :p_old], state.values[li, :, :, :p_old]  # (U or N, h, P, dh)
                if rows is None:
                    scores = (q.unsqueeze(2) @ ck.transpose(-1, -2)).squeeze(2) / math.sqrt(self.dh)
                    scores = torch.cat(
                        [scores.masked_fill(~state.valid[:, None, :], float("-inf")), own[..., None]], -1
                    )
                    w = torch.softmax(scores, dim=-1)
                    p = ck.shape[2]
                    ctx = (w[:, :, None, :p] @ cv).squeeze(2) + w[:, :, p:] * v
                else:
                    assert shared is not None
                    ctx = attend_rows(q, ck, cv, state.valid, rows, shared, extra=(own, v))
                x = x + layer.drop(a.o(ctx.reshape(n, -1)))
            with region("decoder.cross_attention"):
                c = layer.cross
                cq = c.q(layer.ln2(x)).view(n, self.heads, self.dh)
                cctx = attend_rows(cq, enc.cross_k[li], enc.cross_v[li], enc.mask, batch_idx, layout)
                x = x + layer.drop(c.o(cctx.reshape(n, -1)))
            with region("decoder.ffn"):
                x = x + layer.drop(layer.ffn(layer.ln3(x)))
            new_k.append(k)
            new_v.append(v)
        with region("decoder.cache"):
            keys, values, fill = _append(state, torch.stack(new_k), torch.stack(new_v), rows)
            valid = state.valid if rows is None else state.valid.index_select(0, rows)
            valid = torch.cat([valid, valid.new_ones(n, 1)], dim=1)
        new = TransformerState(keys, values, valid, pos + 1, batch_idx, layout=layout, fill=fill)
        return self.dec_norm(x), new

    # ------------------------------------------------------------------ teacher forcing

    def forward(self, src: torch.Tensor, src_len: torch.Tensor, dec_input: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits ``(B, T, V)`` for decoder inputs ``dec_input (B, T)`` (BOS + shifted target)."""
        return self.teacher_forced(self.encode(src, src_len), dec_input)

    def teacher_forced(self, enc: TransformerEncoded, dec_input: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits ``(B, T, V)`` in one causal pass."""
        return self._decode_all(enc, dec_input, want_cache=False)[0]

    def teacher_forced_states(
        self, enc: TransformerEncoded, dec_input: torch.Tensor, detach: bool = True
    ) -> tuple[torch.Tensor, TransformerState]:
        """Logits ``(B, T, V)`` and the ``T*B`` states before each input (row ``t*B + b``: the cache of the first
        t inputs of example b, stored in T columns of which the first t are valid)."""
        logits, cache = self._decode_all(enc, dec_input, want_cache=True)
        assert cache is not None
        keys, values = cache  # (L, B, h, T, dh)
        if detach:
            keys, values = keys.detach(), values.detach()
        b, t = dec_input.shape
        dev = dec_input.device
        rep = torch.arange(b, device=dev).repeat(t)  # row t*B + b -> example b
        steps = torch.arange(t, device=dev).repeat_interleave(b)  # row t*B + b -> t
        valid = torch.arange(t, device=dev)[None, :] < steps[:, None]
        state = TransformerState(keys.index_select(1, rep), values.index_select(1, rep), valid, steps, rep)
        return logits, state

    def _decode_all(
        self, enc: TransformerEncoded, dec_input: torch.Tensor, want_cache: bool
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
        b, t = dec_input.shape
        dev = dec_input.device
        pos = torch.arange(t, device=dev)
        x = self._inputs(dec_input, pos[None, :].expand(b, t))
        if self.align is not None:
            x = x + self._aligned(enc, torch.arange(b, device=dev).repeat_interleave(t), pos.repeat(b)).view(b, t, -1)
        x = self.dropout(x)
        causal = (pos[None, :] <= pos[:, None])[None, None]  # (1, 1, T, T)
        cross_mask = enc.mask[:, None, None, :]
        ks, vs = [], []
        for li, layer in enumerate(self.dec_layers):
            a = layer.self_attn
            h = layer.ln1(x)
            k, v = a.split(a.k(h)), a.split(a.v(h))  # (B, h, T, dh)
            x = x + layer.drop(a.mix(a.split(a.q(h)), k, v, causal))
            c = layer.cross
            x = x + layer.drop(c.mix(c.split(c.q(layer.ln2(x))), enc.cross_k[li], enc.cross_v[li], cross_mask))
            x = x + layer.drop(layer.ffn(layer.ln3(x)))
            if want_cache:
                ks.append(k)
                vs.append(v)
        logits = self.out(self.dropout(self.dec_norm(x)))
        return logits, ((torch.stack(ks), torch.stack(vs)) if want_cache else None)
