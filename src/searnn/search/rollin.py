"""Roll-in: run the decoder once over the batch, keeping every cell's logits and decoder state.

Cells. Cell ``t`` of a roll-in is the decision of the token at output position ``t``; its logits are
the model's scores for that position (with gradient, they receive the cost-sensitive loss) and its
state is the decoder state *after* producing those logits, from which a roll-out feeds a candidate token
for position ``t`` and continues. The last cell of every roll-in is its EOS cell (the decision to stop).

Roll-in policies (docs/METHODS.md §2.1):

* ``reference``: teacher forcing on the ground truth (the fast teacher-forced path of the model);
* ``learned``: the model's greedy argmax is fed back (PAD and BOS never, EOS blocked on fixed-length
  tasks: the same decisions as :func:`searnn.decoding.greedy`);
* ``mixed``: per sequence, reference with probability ``p``, else learned, for the whole sequence;
* ``mixed-cell``: per (sequence, step), reference with probability ``p``; the reference token is the
  oracle's next token for the prefix rolled in so far: the first token of its full completion
  (``cost.complete``; for Hamming the ground-truth token at that position).

Lengths. Fixed-length tasks (one output per source position): every roll-in has exactly ``tgt_len``
cells (the tokens, then the EOS cell, where EOS is forced). Variable-length tasks: a roll-in ends at the
first EOS it feeds; it is also cut after ``cap`` tokens (then its cell ``cap`` is a forced EOS cell), so
it has at most ``cap + 1`` cells; a reference roll-in has ``tgt_len`` cells.

Decisions vs gradient. The roll-in's decisions (tokens fed back) and the states the roll-outs start
from are computed in eval mode without gradient: the same policy as test-time decoding and as the
roll-outs (the reference code takes learned roll-in decisions with dropout on but rolls out in eval
mode, docs/METHODS.md §7.1). The logits that receive the loss are recomputed in the model's own mode (dropout on
while training) by one teacher-forced pass over the chosen tokens, the model's fast path: the gradient
costs what MLE's costs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from searnn.costs.base import Cost, length_mask
from searnn.data.batch import Batch
from searnn.data.vocab import BOS_ID, EOS_ID
from searnn.decoding.greedy import blocked_bias
from searnn.models.state import DecoderState, Encoded
from searnn.protocol import cat_states

ROLLINS = ("reference", "learned", "mixed", "mixed-cell")
"""Roll-in policies (``SearnnConfig.rollin``)."""


@dataclass
class RollIn:
    """Result of a roll-in over B sequences and T cells.

    logits: ``(B, T, V)`` with autograd history; tokens: ``(B, T)`` long, the token taken at each cell
    (EOS at the last cell, EOS after it); cells: ``(B,)`` long, number of cells (tokens + EOS cell);
    states: decoder states after each cell, ``T*B`` rows, row ``t*B + b`` (detached; None when not
    requested); enc: the encoder output; reference_rows: ``(B,)`` bool, sequences rolled in with the
    reference policy (all for ``reference``, none for ``learned``/``mixed-cell``); last_deviation:
    ``(B,)`` long, the last cell whose decision differs from the greedy policy's (-1 when none; the
    number of cells for a reference roll-in): from any later cell on, the roll-in *is* the greedy
    roll-out of its own token, which the roll-outs reuse instead of recomputing it.
    """

    logits: torch.Tensor
    tokens: torch.Tensor
    cells: torch.Tensor
    states: DecoderState | None
    enc: Encoded
    reference_rows: torch.Tensor
    last_deviation: torch.Tensor

    @property
    def num_cells(self) -> int:
        return int(self.tokens.shape[1])

    @property
    def cell_mask(self) -> torch.Tensor:
        """``(B, T)`` bool, True on the roll-in's cells."""
        return length_mask(self.cells, self.num_cells)


@dataclass
class _Decisions:
    """The decision pass of a roll-in (see :class:`RollIn` for the fields)."""

    tokens: torch.Tensor
    cells: torch.Tensor
    states: DecoderState | None
    enc: Encoded
    reference_rows: torch.Tensor
    last_deviation: torch.Tensor


def roll_in(
    model: torch.nn.Module,
    batch: Batch,
    mode: str,
    ref_prob: float,
    cap: torch.Tensor,
    fixed_length: bool,
    oracle: Cost | None = None,
    need_states: bool = True,
    encode: Callable[[], Encoded] | None = None,
    max_cells: int | None = None,
) -> RollIn:
    """Roll in with policy ``mode`` (see :data:`ROLLINS`).

    model: a :class:`searnn.models.Seq2Seq`; batch: the batch; ref_prob: probability of the reference
    for ``mixed``/``mixed-cell``; cap: ``(B,)`` long, most tokens of any output of each example (the
    reference length on fixed-length tasks); oracle: the cost whose ``complete`` gives ``mixed-cell``'s
    reference tokens; need_states: keep the per-cell decoder states (learned roll-outs need them);
    encode: encodes ``batch`` (default ``model.encode(batch.src, batch.src_len)``); max_cells: the static-shape
    search (:mod:`searnn.search.static`): the number of steps of a step-by-step roll-in, known on the host (at
    least ``max(cap) + 1``, or ``tgt_len`` on fixed-length tasks), run to the end without an early exit.

    Two passes: the *decisions* (tokens, and the states roll-outs start from) come from a pass without
    gradient in eval mode, i.e. the policy used at test time and by the roll-outs (no dropout); the
    *logits* that receive the loss come from one teacher-forced pass over the chosen tokens in the
    model's current mode, through the model's fast path (as MLE). The reference roll-in runs a single
    pass when the model has no active dropout (both passes would compute the same function) or when no
    states are needed.
    """
    if mode not in ROLLINS:
        raise ValueError(f"unknown roll-in {mode!r}; valid: {', '.join(ROLLINS)}")
    stochastic = model.training and has_dropout(model)
    if encode is None:
        def encode() -> Encoded:
            return model.encode(batch.src, batch.src_len)
    if mode == "reference" and not (stochastic and need_states):
        return _reference(model, batch, need_states, encode)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            if mode == "reference":
                ref = _reference(model, batch, need_states, encode)
                decided = _Decisions(
                    ref.tokens, ref.cells, ref.states, ref.enc, ref.reference_rows, ref.last_deviation
                )
            else:
                decided = _stepwise(
                    model, batch, mode, ref_prob, cap, fixed_length, oracle, need_states, encode, max_cells
                )
    finally:
        model.train(was_training)
    # Gradient pass: teacher forcing on the roll-in's own tokens.
    dec_input = torch.cat([torch.full_like(decided.tokens[:, :1], BOS_ID), decided.tokens[:, :-1]], dim=1)
    logits = model.teacher_forced(encode(), dec_input)
    return RollIn(
        logits, decided.tokens, decided.cells, decided.states, decided.enc, decided.reference_rows,
        decided.last_deviation,
    )


_DROPOUTS = (
    torch.nn.Dropout, torch.nn.Dropout1d, torch.nn.Dropout2d, torch.nn.Dropout3d, torch.nn.AlphaDropout,
    torch.nn.FeatureAlphaDropout,
)


def has_dropout(model: torch.nn.Module) -> bool:
    """Whether any module of ``model`` drops out (dropout layers, or RNNs with inter-layer dropout)."""
    for m in model.modules():
        if isinstance(m, _DROPOUTS) and m.p > 0:
            return True
        if isinstance(m, torch.nn.RNNBase) and m.dropout > 0:
            return True
    return False


def _reference(model: torch.nn.Module, batch: Batch, need_states: bool, encode: Callable[[], Encoded]) -> RollIn:
    """Teacher forcing with the model's fast path (same function as the MLE objective's forward)."""
    enc = encode()
    b, t = batch.tgt.shape
    dec_input = batch.decoder_input
    tokens = _gt_tokens(batch)
    states = None
    if need_states:
        # One extra input (the token of the last cell) so that the state after every cell exists:
        # teacher_forced_states returns the states *before* each input, row t*B + b.
        extended = torch.cat([dec_input, tokens[:, -1:]], dim=1)
        logits, before = model.teacher_forced_states(enc, extended)
        logits = logits[:, :t]
        states = before.index(torch.arange(b, (t + 1) * b, device=batch.tgt.device))
    else:
        logits = model.teacher_forced(enc, dec_input)
    reference_rows = torch.ones(b, dtype=torch.bool, device=batch.tgt.device)
    never = torch.full((b,), t, dtype=torch.long, device=batch.tgt.device)
    return RollIn(logits, tokens, batch.tgt_len.clone(), states, enc, reference_rows, never)


def _gt_tokens(batch: Batch) -> torch.Tensor:
    """``(B, T)``: the ground truth with EOS from the EOS cell on (instead of PAD)."""
    t = torch.arange(batch.tgt.shape[1], device=batch.tgt.device)
    return torch.where(t[None, :] < batch.tgt_len[:, None] - 1, batch.tgt, torch.full_like(batch.tgt, EOS_ID))


def _stepwise(
    model: torch.nn.Module,
    batch: Batch,
    mode: str,
    ref_prob: float,
    cap: torch.Tensor,
    fixed_length: bool,
    oracle: Cost | None,
    need_states: bool,
    encode: Callable[[], Encoded],
    static_cells: int | None = None,
) -> _Decisions:
    """Step-by-step decisions for ``learned``, ``mixed`` and ``mixed-cell`` (loop over time steps only;
    the caller runs it without gradient). ``static_cells``: run exactly that many steps (host-known, no early
    exit when every roll-in has ended; the later cells hold EOS)."""
    enc = encode()
    device = batch.tgt.device
    b = batch.size
    ref_tokens = batch.tgt_len - 1
    # (B,) index of each roll-in's final (forced EOS) cell
    last_cell = ref_tokens if fixed_length else torch.maximum(cap, ref_tokens)
    max_cells = int(last_cell.max()) + 1 if static_cells is None else static_cells
    gt = _gt_tokens(batch)
    if gt.shape[1] < max_cells:
        gt = torch.cat([gt, gt.new_full((b, max_cells - gt.shape[1]), EOS_ID)], dim=1)
    reference_rows = torch.zeros(b, dtype=torch.bool, device=device)
    if mode == "mixed":
        reference_rows = torch.rand(b, device=device) < ref_prob
    if mode == "mixed-cell" and oracle is None:
        raise ValueError("the mixed-cell roll-in needs the cost's oracle")

    blocked = blocked_bias(int(model.tgt_vocab_size), fixed_length, device)  # PAD, BOS (and EOS) never fed
    state = model.init_state(enc)
    inp = torch.full((b,), BOS_ID, dtype=torch.long, device=device)
    done = torch.zeros(b, dtype=torch.bool, device=device)
    cells = last_cell + 1
    last_deviation = torch.full((b,), -1, dtype=torch.long, device=device)
    tokens = torch.full((b, max_cells), EOS_ID, dtype=torch.long, device=device)
    state_steps: list[DecoderState] = []
    for t in range(max_cells):
        step_logits, state = model.step(enc, state, inp)  # (B, V)
        if need_states:
            state_steps.append(state)
        greedy_choice = (step_logits + blocked).argmax(dim=-1)
        choice = greedy_choice
        if mode == "mixed":
            choice = torch.where(reference_rows, gt[:, t], choice)
        elif mode == "mixed-cell":
            coin = torch.rand(b, device=device) < ref_prob
            ref_next = _oracle_next(oracle, tokens, t, batch.tgt, ref_tokens, max_cells - 1)
            if fixed_length:  # an oracle stopping early cannot be followed: keep the position's token
                ref_next = torch.where(ref_next == EOS_ID, gt[:, t], ref_next)
            choice = torch.where(coin, ref_next, choice)
        deviates = (choice != greedy_choice) & ~done
        last_deviation = torch.where(deviates, torch.full_like(last_deviation, t), last_deviation)
        # the cap's forced EOS is no deviation: roll-outs stop at the same cap
        choice = torch.where(t >= last_cell, torch.full_like(choice, EOS_ID), choice)
        choice = torch.where(done, torch.full_like(choice, EOS_ID), choice)
        tokens[:, t] = choice
        newly = ~done & (choice == EOS_ID)
        cells = torch.where(newly, torch.full_like(cells, t + 1), cells)
        done = done | newly
        if static_cells is None and t + 1 < max_cells and bool(done.all()):
            tokens = tokens[:, : t + 1]
            break
        inp = choice
    states = cat_states(state_steps) if need_states else None
    return _Decisions(tokens, cells, states, enc, reference_rows, last_deviation)


def _oracle_next(
    oracle: Cost | None, tokens: torch.Tensor, t: int, ref: torch.Tensor, ref_len: torch.Tensor, max_len: int
) -> torch.Tensor:
    """The oracle's next token after the roll-in prefix ``tokens[:, :t]``: the first token of its full
    cost-minimising completion (``cost.complete`` with room up to ``max_len`` tokens in all, the bound of
    the roll-in and the roll-outs), EOS when that completion is empty.

    tokens ``(B, >= t)``, ref ``(B, T')``, ref_len ``(B,)`` -> ``(B,)`` long. (A completion cut to one token
    would be the best one-token-then-stop completion instead, whose token is often not optimal: for the
    reference ``ab`` and the edit cost, ``b`` ties with ``a`` at one token, but only ``a`` starts ``ab``.)
    """
    assert oracle is not None
    b = tokens.shape[0]
    prefix_len = torch.full((b,), t, dtype=torch.long, device=tokens.device)
    seq, seq_len = oracle.complete(tokens[:, :t], prefix_len, ref, ref_len, max_len)
    if seq.shape[1] <= t:
        return torch.full((b,), EOS_ID, dtype=torch.long, device=tokens.device)
    nxt = seq[:, t]
    return torch.where(seq_len > t, nxt, torch.full_like(nxt, EOS_ID))
