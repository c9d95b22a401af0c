"""Encoder outputs and decoder states, the currency of decoding and SeaRNN roll-outs.

A :class:`DecoderState` holds N *rows*; row n belongs to example ``batch_idx[n]`` of an
:class:`Encoded` batch of B examples. Rows can be selected, repeated and concatenated like tensor rows
(:meth:`DecoderState.index`, :meth:`DecoderState.cat`), so greedy decoding, beam search and roll-outs
all drive the same :meth:`searnn.models.Seq2Seq.step`.

Memory/compute trade-off. A state never stores the encoder memory per row: thousands of roll-out rows of
one example share the ``(S, H_enc)`` memory of that example. Attention in ``step`` reaches the memory
through ``batch_idx`` with a :class:`RowLayout`, computed once per distinct ``batch_idx`` and cached on
the state (``step`` passes it on to the next state, so a whole roll-out pays for it once):

* ``identity`` (``batch_idx == arange(B)``): attention is one batched matmul against the memory;
* ``grouped``: rows are scattered into a padded ``(B, M, .)`` block (M = most rows of one example) and
  attend with batched matmuls against the shared memory; costs ``B*M`` query slots (chosen when
  ``B*M <= 2*N``), never copies the memory. When the rows belong to a few of the B examples only (SeaRNN
  roll-out chunks), the block has one row per present example, ``(G, M, .)``, and the G memories are
  gathered (G rows of memory instead of N);
* ``gather``: the memory (and attention keys) are gathered per row, transiently, ``(N, S, H_enc)``; only
  used when rows are so unbalanced across examples that grouping would waste more than half its slots.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

_STATIC_LAYOUTS = [False]


@contextmanager
def static_layouts() -> Iterator[None]:
    """Inside this context, states without a layout attend with the ``gather`` layout, whose shapes are known
    on the host (:meth:`RowLayout.build` reads row counts from the device: a host synchronisation on CUDA).
    Used by SeaRNN's static-shape search (:mod:`searnn.search.static`)."""
    before = _STATIC_LAYOUTS[0]
    _STATIC_LAYOUTS[0] = True
    try:
        yield
    finally:
        _STATIC_LAYOUTS[0] = before


def static_shapes_active() -> bool:
    """Whether the caller runs inside :func:`static_layouts` (models then avoid reading device values)."""
    return _STATIC_LAYOUTS[0]


def row_layout(batch_idx: torch.Tensor, num_examples: int) -> RowLayout:
    """:meth:`RowLayout.build`, or the ``gather`` layout inside :func:`static_layouts` (no device read)."""
    if _STATIC_LAYOUTS[0]:
        return RowLayout("gather", num_examples)
    return RowLayout.build(batch_idx, num_examples)


@dataclass
class Encoded:
    """Encoder output for a batch of B source sequences.

    memory: ``(B, S, H_enc)`` top-layer outputs (zeros at padded positions);
    mask: ``(B, S)`` bool, True at real source positions;
    keys: ``(B, S, A)`` attention keys precomputed once per batch (``W_c m`` for additive attention,
    ``W m`` for multiplicative), None without attention;
    h_final: ``(L_enc, B, H_enc)`` final hidden state per encoder layer (directions concatenated);
    c_final: same for the LSTM cell state, None for GRU;
    src_len: ``(B,)`` long.
    """

    memory: torch.Tensor
    mask: torch.Tensor
    keys: torch.Tensor | None
    h_final: torch.Tensor
    c_final: torch.Tensor | None
    src_len: torch.Tensor

    @property
    def batch_size(self) -> int:
        return int(self.memory.shape[0])


@dataclass(frozen=True)
class RowLayout:
    """How N decoder rows are arranged against the B examples of an :class:`Encoded` for attention.

    mode: ``identity`` | ``grouped`` | ``gather`` (see module docstring); num_examples: B; pos: ``(N,)`` long, flat slot
    ``g * width + j`` of each row in the padded ``(G, width)`` block (``grouped`` only); width: M;
    examples: ``(G,)`` long, the examples that have rows, block row g being example ``examples[g]``
    (``grouped`` over the present examples only, when grouping all B would waste too many slots; None:
    G = B, block row b is example b).
    """

    mode: str
    num_examples: int
    pos: torch.Tensor | None = None
    width: int = 1
    examples: torch.Tensor | None = None

    @staticmethod
    def build(batch_idx: torch.Tensor, num_examples: int) -> RowLayout:
        """Choose a layout for rows ``batch_idx (N,)`` over ``num_examples`` examples."""
        n = int(batch_idx.numel())
        if n == 0:
            return RowLayout("gather", num_examples)
        if n == num_examples and torch.equal(
            batch_idx, torch.arange(n, device=batch_idx.device, dtype=batch_idx.dtype)
        ):
            return RowLayout("identity", num_examples)
        counts = torch.bincount(batch_idx, minlength=num_examples)
        width = int(counts.max())
        examples = None
        block_row = None
        if num_examples * width > 2 * n:
            # group over the examples that have rows only (SeaRNN roll-out chunks hold many rows of a few
            # examples): the block then has G rows, and attention gathers G memories, not N
            examples = counts.nonzero().squeeze(1)
            if int(examples.numel()) * width > 2 * n:
                return RowLayout("gather", num_examples)
            block_row = torch.full_like(counts, -1)
            block_row[examples] = torch.arange(int(examples.numel()), device=counts.device, dtype=counts.dtype)
        order = torch.argsort(batch_idx, stable=True)
        sorted_b = batch_idx[order]
        starts = torch.cumsum(counts, 0) - counts
        slot = torch.arange(n, device=batch_idx.device) - starts[sorted_b]
        pos = torch.empty_like(batch_idx)
        pos[order] = (sorted_b if block_row is None else block_row[sorted_b]) * width + slot
        return RowLayout("grouped", num_examples, pos, width, examples)


@dataclass
class DecoderState:
    """N decoder rows.

    h: ``(L, N, H)`` hidden state per decoder layer; c: ``(L, N, H)`` LSTM cell state or None;
    feed: ``(N, H)`` previous attentional output (input feeding) or None;
    batch_idx: ``(N,)`` long, the example of the :class:`Encoded` batch each row belongs to;
    pos: ``(N,)`` long, tokens consumed so far (the next input's position), for models with
    ``aligned_input``; None otherwise.
    """

    h: torch.Tensor
    c: torch.Tensor | None
    feed: torch.Tensor | None
    batch_idx: torch.Tensor
    pos: torch.Tensor | None = None
    layout: RowLayout | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return int(self.batch_idx.shape[0])

    def index(self, idx: torch.Tensor) -> DecoderState:
        """Rows ``idx (M,)`` long (repeat an index to repeat a row; a bool mask ``(N,)`` also works) as a
        new state of M rows."""
        idx = idx.to(self.batch_idx.device)
        if idx.dtype == torch.bool:
            idx = idx.nonzero().squeeze(1)
        return DecoderState(
            h=self.h.index_select(1, idx),
            c=None if self.c is None else self.c.index_select(1, idx),
            feed=None if self.feed is None else self.feed.index_select(0, idx),
            batch_idx=self.batch_idx.index_select(0, idx),
            pos=None if self.pos is None else self.pos.index_select(0, idx),
        )

    def head(self, k: int) -> DecoderState:
        """The first ``k`` rows, as views (no copy); equal to ``index(arange(k))``. The attention layout is
        kept where it stays valid for the first rows (``grouped``: their slots; ``gather``)."""
        layout = self.layout
        if layout is not None and layout.mode == "grouped":
            assert layout.pos is not None
            layout = RowLayout("grouped", layout.num_examples, layout.pos[:k], layout.width, layout.examples)
        elif layout is not None and layout.mode != "gather":
            layout = None
        return DecoderState(
            h=self.h[:, :k],
            c=None if self.c is None else self.c[:, :k],
            feed=None if self.feed is None else self.feed[:k],
            batch_idx=self.batch_idx[:k],
            pos=None if self.pos is None else self.pos[:k],
            layout=layout,
        )

    def repeat_interleave(self, k: int) -> DecoderState:
        """Each row repeated k times in place: rows ``n*k .. n*k+k-1`` are copies of row n."""
        idx = torch.arange(len(self), device=self.batch_idx.device).repeat_interleave(k)
        return self.index(idx)

    @classmethod
    def cat(cls, states: Sequence[DecoderState]) -> DecoderState:
        """Concatenate the rows of several states (all on the same :class:`Encoded` batch)."""
        if not states:
            raise ValueError("DecoderState.cat needs at least one state")
        first = states[0]
        return cls(
            h=torch.cat([s.h for s in states], dim=1),
            c=None if first.c is None else torch.cat([s.c for s in states], dim=1),  # type: ignore[misc]
            feed=None if first.feed is None else torch.cat([s.feed for s in states], dim=0),  # type: ignore[misc]
            batch_idx=torch.cat([s.batch_idx for s in states], dim=0),
            pos=None if first.pos is None else torch.cat([s.pos for s in states], dim=0),  # type: ignore[misc]
        )

    def to(self, device: torch.device | str) -> DecoderState:
        return DecoderState(
            h=self.h.to(device),
            c=None if self.c is None else self.c.to(device),
            feed=None if self.feed is None else self.feed.to(device),
            batch_idx=self.batch_idx.to(device),
            pos=None if self.pos is None else self.pos.to(device),
        )

    def detach(self) -> DecoderState:
        """Same rows, cut from the autograd graph (roll-outs need no gradient)."""
        return DecoderState(
            h=self.h.detach(),
            c=None if self.c is None else self.c.detach(),
            feed=None if self.feed is None else self.feed.detach(),
            batch_idx=self.batch_idx,
            pos=self.pos,
            layout=self.layout,
        )

    def get_layout(self, num_examples: int) -> RowLayout:
        """The cached :class:`RowLayout` of this state's rows (built on first use)."""
        if self.layout is None or self.layout.num_examples != num_examples:
            self.layout = row_layout(self.batch_idx, num_examples)
        return self.layout
