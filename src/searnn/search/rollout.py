"""Roll-outs: complete every chosen (example, cell, token) of a roll-in into a full output sequence.

A candidate ``(b, t, a)`` is the roll-in prefix of example b before cell t (``rollin.tokens[b, :t]``),
then token ``a`` at position t, then a completion:

* ``a == EOS``: the sequence ends there (``t`` tokens). On fixed-length tasks EOS at a non-final cell
  is therefore an output that is too short, and its cost counts the missing positions (Hamming counts
  every position present in only one of the two sequences);
* no room left (``t + 1 >= cap[b]``, e.g. a non-EOS token at the EOS cell of a fixed-length task): the
  sequence is the prefix and ``a`` (``t + 1`` tokens, one too many on fixed-length tasks), no forward;
* **learned** roll-out: from the roll-in state after cell t, feed ``a`` and decode greedily (argmax; EOS
  blocked on fixed-length tasks, so the output has exactly ``cap`` tokens; otherwise up to the first EOS
  or ``cap`` tokens). All learned candidates of the batch run in one batched pass
  (:func:`searnn.decoding.greedy`), in chunks of ``chunk_size`` rows to bound memory; rows that stop
  leave the batch; rows index the shared encoder memory through ``DecoderState.batch_idx`` (never
  copied). The model is put in eval mode (no dropout) and no gradient is recorded;
  A learned roll-out of the roll-in's own token at a cell after the roll-in's last non-greedy decision
  is the rest of the roll-in itself (the roll-in decisions are taken by the same eval-mode greedy
  policy): it is copied, not decoded;
* **reference** roll-out: the cost's oracle ``complete(prefix + a)`` (no network).

Options (both off by default, i.e. the paper's roll-outs): a shortlist ``scorer``
(:mod:`searnn.search.shortlist`) takes the learned roll-outs' argmax over a shortlist of tokens; a
``horizon`` H > 0 decodes at most H tokens of each learned roll-out and lets the cost's reference policy
complete the rest (a deviation from the paper: the paper's learned roll-outs decode to the end).

Every candidate's output is returned as one padded ``(N, L)`` tensor, ready for one batched cost call.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from searnn.costs.base import Cost, pad_to
from searnn.data.vocab import EOS_ID, PAD_ID
from searnn.decoding.greedy import Scorer, greedy, token_gates_for
from searnn.profiling import region
from searnn.search.bucketing import bucketed_complete
from searnn.search.rollin import RollIn

ROLLOUTS = ("reference", "learned", "mixed")
"""Roll-out policies (``SearnnConfig.rollout``)."""

MIX_PER = ("sequence", "rollout")
"""Granularity of the mixed roll-out's coin (``SearnnConfig.mix_per``)."""


@dataclass
class Candidates:
    """N flat candidates: example ``b (N,)``, cell ``t (N,)``, token ``a (N,)``, all long, and
    ``learned (N,)`` bool (learned roll-out, else reference). ``valid (N,)`` bool: the static-shape search's
    padded layout (:mod:`searnn.search.static`), rows ``(b, t, slot)`` of a dense ``(B, T, A)`` block of which
    only the valid rows are candidates; None: every row is one (the dynamic search)."""

    b: torch.Tensor
    t: torch.Tensor
    a: torch.Tensor
    learned: torch.Tensor
    valid: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.b.shape[0])


@dataclass
class Completions:
    """Completed outputs of N candidates: seq ``(N, L)`` long (PAD after ``seq_len``), seq_len ``(N,)``;
    counters for logging: learned roll-outs run, reference completions, decoder row-steps (rows summed
    over steps), decoder calls (batched ``model.step`` calls), learned roll-outs copied from the roll-in."""

    seq: torch.Tensor
    seq_len: torch.Tensor
    num_learned: int
    num_reference: int
    decoder_steps: int
    decoder_calls: int = 0
    num_reused: int = 0
    num_cut: int = 0
    """learned roll-outs stopped at the horizon and completed by the reference policy"""


def draw_learned(
    mode: str, ref_prob: float, b: torch.Tensor, batch_size: int, mix_per: str = "sequence"
) -> torch.Tensor:
    """``(N,)`` bool: which candidates of examples ``b (N,)`` are rolled out with the learned policy.

    ``mixed``: reference with probability ``ref_prob`` drawn once per sequence (``mix_per='sequence'``,
    as the reference code) or once per candidate (``'rollout'``).
    """
    if mode not in ROLLOUTS:
        raise ValueError(f"unknown roll-out {mode!r}; valid: {', '.join(ROLLOUTS)}")
    if mode == "reference":
        return torch.zeros_like(b, dtype=torch.bool)
    if mode == "learned":
        return torch.ones_like(b, dtype=torch.bool)
    if mix_per == "sequence":
        ref_rows = torch.rand(batch_size, device=b.device) < ref_prob
        return ~ref_rows[b]
    if mix_per == "rollout":
        return torch.rand(b.shape, device=b.device) >= ref_prob
    raise ValueError(f"unknown mix_per {mix_per!r}; valid: {', '.join(MIX_PER)}")


def prefix_with_candidate(rollin: RollIn, cand: Candidates, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(seq (N, width), seq_len (N,))``: the roll-in prefix before each cell, then the candidate
    token (nothing for EOS), PAD after."""
    prefix = pad_to(rollin.tokens.index_select(0, cand.b), width, PAD_ID)  # (N, width)
    pos = torch.arange(width, device=prefix.device)[None, :]
    t = cand.t[:, None]
    seq = torch.where(pos < t, prefix, torch.full_like(prefix, PAD_ID))
    is_eos = cand.a == EOS_ID
    seq = torch.where((pos == t) & ~is_eos[:, None], cand.a[:, None], seq)
    seq_len = cand.t + (~is_eos).long()
    return seq, seq_len


def complete(
    model: torch.nn.Module,
    rollin: RollIn,
    cand: Candidates,
    cap: torch.Tensor,
    ref: torch.Tensor,
    ref_len: torch.Tensor,
    oracle: Cost,
    fixed_length: bool,
    chunk_size: int = 1024,
    scorer: Scorer | None = None,
    horizon: int = 0,
) -> Completions:
    """Complete every candidate (see the module docstring).

    cap: ``(B,)`` long, most tokens of an output of each example; ref: ``(B, T')`` long reference
    tokens, ref_len: ``(B,)`` (tokens, without EOS); oracle: the cost providing ``complete``;
    scorer: the learned roll-outs' output scores (default: the full vocabulary); horizon: most tokens
    decoded per learned roll-out before the oracle completes it (0 = decode to the end).
    Profiled regions (:mod:`searnn.profiling`): ``learned``, ``reference``.
    """
    cap_n = cap.index_select(0, cand.b)  # (N,)
    width = int(cap.max()) + 1 if cap.numel() else 1
    width = max(width, rollin.num_cells)
    seq, seq_len = prefix_with_candidate(rollin, cand, width)
    grows = (cand.a != EOS_ID) & (cand.t + 1 < cap_n)  # (N,) needs a continuation
    reference_rows = (grows & ~cand.learned).nonzero().squeeze(1)
    # A learned roll-out of the roll-in's own token, after the roll-in's last non-greedy decision, is the
    # rest of the roll-in itself (same greedy policy, same state): copy it instead of decoding it.
    own = rollin.tokens[cand.b, cand.t] == cand.a
    reuse = grows & cand.learned & own & (cand.t >= rollin.last_deviation.index_select(0, cand.b))
    reuse_rows = reuse.nonzero().squeeze(1)
    reuse_cut = reuse_rows[:0]
    if reuse_rows.numel() > 0:
        rb = cand.b.index_select(0, reuse_rows)
        length = rollin.cells.index_select(0, rb) - 1  # the roll-in's tokens, without its EOS
        own_seq = pad_to(rollin.tokens.index_select(0, rb), seq.shape[1], PAD_ID)
        pos = torch.arange(seq.shape[1], device=seq.device)[None, :]
        reuse_cut = reuse_rows[:0]
        if horizon > 0:  # as a decoded roll-out: keep H tokens after the candidate when the budget allows more
            stop = cand.t.index_select(0, reuse_rows) + 1 + horizon
            over = (length >= stop) & (cap_n.index_select(0, reuse_rows) > stop)
            length = torch.where(over, stop, length)
            reuse_cut = reuse_rows[over]
        seq[reuse_rows] = torch.where(pos < length[:, None], own_seq, torch.full_like(own_seq, PAD_ID))
        seq_len[reuse_rows] = length
    learned_rows = (grows & cand.learned & ~reuse).nonzero().squeeze(1)
    steps = calls = 0
    cut = learned_rows[:0]
    if learned_rows.numel() > 0:
        with region("learned"):
            steps, calls, cut = _learned(
                model, rollin, cand, cap_n, learned_rows, seq, seq_len, fixed_length, chunk_size, scorer, horizon
            )
    cut = torch.cat([cut, reuse_cut])
    with region("reference"):
        if reference_rows.numel() > 0 or cut.numel() > 0:
            # the reference completions and the learned roll-outs cut at the horizon, in one oracle call
            seq = _reference(cand, torch.cat([reference_rows, cut]), seq, seq_len, ref, ref_len, oracle, width)
    return Completions(
        seq, seq_len, int(learned_rows.numel()), int(reference_rows.numel()), steps, calls, int(reuse_rows.numel()),
        int(cut.numel()),
    )


def _learned(
    model: torch.nn.Module,
    rollin: RollIn,
    cand: Candidates,
    cap_n: torch.Tensor,
    rows: torch.Tensor,
    seq: torch.Tensor,
    seq_len: torch.Tensor,
    fixed_length: bool,
    chunk_size: int,
    scorer: Scorer | None = None,
    horizon: int = 0,
) -> tuple[int, int, torch.Tensor]:
    """Greedy continuations of candidates ``rows``, written into ``seq``/``seq_len`` in place.
    Returns the number of decoder row-steps and of decoder calls run, and the candidates ``(C,)`` long
    whose decoding stopped at the ``horizon`` (> 0) before their end (the caller completes them)."""
    if rollin.states is None:
        raise ValueError("learned roll-outs need the roll-in states (roll_in(..., need_states=True))")
    b_size = rollin.tokens.shape[0]
    start = cand.t.index_select(0, rows) + 1  # first position of the continuation
    budget = cap_n.index_select(0, rows) - start  # (R,) tokens left, >= 1
    full_budget = budget
    if horizon > 0:
        budget = budget.clamp(max=horizon)
    # Longest continuations first, so that each chunk holds rows of similar length.
    order = torch.argsort(budget, descending=True, stable=True)
    rows, start, budget, full_budget = rows[order], start[order], budget[order], full_budget[order]
    state_rows = cand.t.index_select(0, rows) * b_size + cand.b.index_select(0, rows)
    was_training = model.training
    model.eval()
    steps = calls = 0
    cut: list[torch.Tensor] = []
    try:
        with torch.no_grad():
            # the token-gate table once for all chunks (it costs V x E x G, like ~V decoded rows)
            gates = token_gates_for(model, int(rows.numel()), int(budget.max()))
            for lo in range(0, int(rows.numel()), chunk_size):
                sl = slice(lo, lo + chunk_size)
                # the candidates of a cell share its state: index it once, branch in the first step
                shared, branch = torch.unique(state_rows[sl], return_inverse=True)
                tokens, lengths = greedy(
                    model, rollin.enc, rollin.states.index(shared), budget[sl], fixed_length,
                    first_tokens=cand.a.index_select(0, rows[sl]), state_rows=branch, gates=gates, scorer=scorer,
                )
                # a row that stopped on EOS ran one step more than it emitted
                ran = torch.minimum(lengths + 1, budget[sl])
                steps += int(ran.sum())
                calls += int(ran.max())
                with region("write"):
                    _write(seq, seq_len, rows[sl], start[sl], tokens, lengths)
                    if horizon > 0:  # still going at the horizon: no EOS, budget left
                        cut.append(rows[sl][(lengths == budget[sl]) & (budget[sl] < full_budget[sl])])
    finally:
        model.train(was_training)
    return steps, calls, torch.cat(cut) if cut else rows[:0]


def _write(
    seq: torch.Tensor,
    seq_len: torch.Tensor,
    rows: torch.Tensor,
    start: torch.Tensor,
    tokens: torch.Tensor,
    lengths: torch.Tensor,
) -> None:
    """``seq[rows[i], start[i] + j] = tokens[i, j]`` for ``j < lengths[i]``; ``seq_len[rows] += lengths``."""
    if tokens.shape[1] == 0:
        return
    j = torch.arange(tokens.shape[1], device=tokens.device)[None, :]
    valid = j < lengths[:, None]  # (R, L)
    col = (start[:, None] + j).clamp(max=seq.shape[1] - 1)
    row = rows[:, None].expand_as(col)
    seq[row[valid], col[valid]] = tokens[valid]
    seq_len[rows] = start + lengths


def _reference(
    cand: Candidates,
    rows: torch.Tensor,
    seq: torch.Tensor,
    seq_len: torch.Tensor,
    ref: torch.Tensor,
    ref_len: torch.Tensor,
    oracle: Cost,
    width: int,
) -> torch.Tensor:
    """Oracle completions of candidates ``rows`` (batched ``complete`` calls by length bucket). Returns ``seq``,
    widened if the oracle's outputs are longer; ``seq_len`` is updated in place."""
    b = cand.b.index_select(0, rows)
    out, out_len = bucketed_complete(
        oracle, seq.index_select(0, rows), seq_len.index_select(0, rows), ref.index_select(0, b),
        ref_len.index_select(0, b), width - 1,
    )
    if out.shape[1] > seq.shape[1]:
        seq = pad_to(seq, out.shape[1], PAD_ID)
    seq[rows] = pad_to(out, seq.shape[1], PAD_ID)
    seq_len[rows] = out_len
    return seq
