"""The static-shape ("sync-free") SeaRNN search, for GPUs (``SearnnConfig.static_shapes``).

The dynamic search (:mod:`searnn.search.engine`) sizes its tensors from the data: ``nonzero`` on the token
mask, early exits when every roll-in or roll-out has ended, finished rows dropped, length buckets, counters
read as Python numbers. On a CPU that is what makes it fast; on a CUDA device each of those reads waits for
the device (a host synchronisation). Here every shape of the step is known on the host before it starts,
from the batch's padded shapes (``B``, ``T``), the options and the vocabulary size:

1. the roll-in runs ``max cap + 1`` steps (``T`` on fixed-length tasks) with finished rows kept (EOS fed on);
   the encoder packs the sources with the batch's host copy of the lengths (``Batch.src_len_host``), and
   attention uses the ``gather`` row layout (:func:`searnn.models.state.static_layouts`);
2. candidates are a dense ``(B, T, A)`` block with a validity mask: ``A = V`` for ``sample_tokens='all'``,
   else ``num_tokens`` plus the most forced tokens a cell can have, the chosen tokens of a cell in increasing
   order (a ``topk`` over the token ids), invalid slots last;
3. every row is rolled out: learned rows decode for ``max cap - 1`` steps, by chunks of
   ``rollout_batch_size`` rows, with ended rows masked instead of dropped (:func:`decode_masked`); the
   reference policy completes every row in one oracle call and is kept where the roll-out is a reference
   one; roll-outs of the roll-in's own token after its last deviation copy the roll-in, as in the dynamic
   search;
4. one cost call on one padded width (no buckets) scores the rows and the roll-in sequences;
5. the costs are scattered into ``(B, T, V)`` (invalid rows into a spare column that is dropped).

Values. With deterministic options (reference or learned roll-in and roll-out, every token) the cost
tensor equals the dynamic one (on the dynamic search's cells; the extra cells of a learned roll-in that
ended early are ``+inf`` and outside ``cell_mask``) up to float rounding of the decoder. Random draws
depend on tensor shapes, so with sampling they differ from the dynamic search's (same distributions).

Stats are 0-d tensors (the caller converts them after the step); the timings of the dynamic search
(``rollout_s``, ``cost_s``, ``rollouts_per_s``) are not measured here (they would need a synchronisation).
Not supported: ``rollout_vocab='shortlist'`` (its vocabulary size depends on the batch; a ``ConfigError``
with ``static_shapes='on'``; ``'auto'`` keeps the dynamic search for it). ``rollout_horizon`` is: learned
rows decode at most H steps, and those still going are completed by the oracle.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable

import torch

from searnn.costs.base import Cost, pad_to
from searnn.data.batch import Batch
from searnn.data.vocab import EOS_ID, PAD_ID
from searnn.decoding.greedy import Scorer
from searnn.errors import ConfigError
from searnn.models.seq2seq import Seq2Seq
from searnn.models.state import DecoderState, Encoded, static_layouts
from searnn.profiling import region
from searnn.search.engine import (
    SearchOptions,
    SearchResult,
    choose_tokens,
    output_cap,
    scoring_rows,
    static_unsupported,
)
from searnn.search.rollin import RollIn, roll_in
from searnn.search.rollout import Candidates, Completions, draw_learned, prefix_with_candidate


def host_cap(ref_tokens: int, fixed_length: bool, ratio: float, extra: int) -> int:
    """:func:`searnn.search.engine.output_cap` of a reference of ``ref_tokens`` tokens, as a Python int (the
    bound of every row of a batch whose longest reference has that many tokens)."""
    if fixed_length:
        return ref_tokens
    return max(math.ceil(ref_tokens * ratio) + extra, ref_tokens)


def candidate_slots(opts: SearchOptions, vocab_size: int, fixed_length: bool) -> int:
    """``A``, the most tokens rolled out at one cell: V for ``sample_tokens='all'``, else ``num_tokens`` plus
    the forced tokens (the reference token, ``2 * gt_neighbors`` neighbours, EOS on variable-length tasks)."""
    if opts.sample_tokens == "all":
        return vocab_size
    forced = 1 + 2 * opts.gt_neighbors + (0 if fixed_length else 1)
    return min(vocab_size, opts.num_tokens + forced)


def dense_candidates(chosen: torch.Tensor, slots: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The chosen tokens of every cell as ``slots`` columns: ``chosen (B, T, V)`` bool ->
    ``(tokens (B, T, A) long, valid (B, T, A) bool)``, a cell's tokens in increasing id order, then invalid
    slots (holding unchosen ids). ``A`` must be at least the most tokens chosen at one cell."""
    v = chosen.shape[-1]
    ids = torch.arange(v, device=chosen.device)
    if slots >= v:
        return ids.expand_as(chosen), chosen
    key = torch.where(chosen, ids, ids + v)  # chosen ids first, in increasing order
    vals, tokens = key.topk(slots, dim=-1, largest=False, sorted=True)
    return tokens, vals < v


def _encoder(model: torch.nn.Module, batch: Batch) -> Callable[[], Encoded]:
    """``encode()`` for the roll-in: with the batch's host lengths for a :class:`Seq2Seq` (no copy to the host)."""
    if isinstance(model, Seq2Seq) and batch.src_len_host is not None:
        host = batch.src_len_host

        def encode() -> Encoded:
            return model.encode(batch.src, batch.src_len, host_len=host)
    else:
        def encode() -> Encoded:
            return model.encode(batch.src, batch.src_len)
    return encode


def static_search(
    model: torch.nn.Module,
    batch: Batch,
    cost: Cost,
    fixed_length: bool,
    opts: SearchOptions,
    rollin_ref_prob: float | None = None,
) -> SearchResult:
    """:func:`searnn.search.engine.search` with static shapes (see the module docstring)."""
    unsupported = static_unsupported(opts)
    if unsupported:
        raise ConfigError(f"--static-shapes on does not support {unsupported}; use --static-shapes off")
    p_in = opts.rollin_ref_prob if rollin_ref_prob is None else rollin_ref_prob
    b, t_ref = batch.tgt.shape  # host ints: T = most tokens + 1
    device = batch.tgt.device
    ref_len = batch.tgt_len - 1
    cap = output_cap(ref_len, fixed_length, opts.max_len_ratio, opts.max_len_extra)
    cap_max = host_cap(t_ref - 1, fixed_length, opts.max_len_ratio, opts.max_len_extra)
    reserve = getattr(model, "reserve_positions", None)  # models with a position table (the Transformer)
    if reserve is not None:
        reserve(max(cap_max + 2, t_ref + 1, batch.src.shape[1] + 1))
    with static_layouts():
        with region("rollin"):
            rollin = roll_in(
                model, batch, opts.rollin, p_in, cap, fixed_length, oracle=cost,
                need_states=opts.rollout != "reference", encode=_encoder(model, batch),
                max_cells=t_ref if fixed_length else cap_max + 1,
            )
        _, t_cells, v = rollin.logits.shape
        with torch.no_grad(), region("explore"):
            cells, ext_ref, chosen = choose_tokens(rollin, batch, ref_len, fixed_length, opts)
            tokens, valid = dense_candidates(chosen, candidate_slots(opts, v, fixed_length))
            slots = tokens.shape[-1]
            cb = torch.arange(b, device=device)[:, None, None].expand(b, t_cells, slots).reshape(-1)
            ct = torch.arange(t_cells, device=device)[None, :, None].expand(b, t_cells, slots).reshape(-1)
            ca, ok = tokens.reshape(-1), valid.reshape(-1)
            learned = draw_learned(opts.rollout, opts.rollout_ref_prob, cb, b, opts.mix_per)
            cand = Candidates(cb, ct, ca, learned, valid=ok)
        with torch.no_grad():
            with region("rollout"):
                comp, counts = complete_static(
                    model, rollin, cand, cap, cap_max, batch.tgt, ref_len, cost, fixed_length, opts.rollout_batch_size,
                    horizon=opts.rollout_horizon,
                )
            with region("cost"):
                hyp, hyp_len, rows = scoring_rows(comp, rollin, cb)
                scores = cost(hyp, hyp_len, batch.tgt.index_select(0, rows), ref_len.index_select(0, rows))
                n = len(cand)
                spare = torch.where(ok, ca, torch.full_like(ca, v))  # invalid rows land in column V
                costs = torch.full((b, t_cells, v + 1), math.inf, dtype=torch.float32, device=device)
                costs[cb, ct, spare] = scores[:n].float()
                costs = costs[:, :, :v]
    num_cells = cells.sum()
    rolled = ok.sum()
    stats: dict[str, float | torch.Tensor] = {
        "rollouts": rolled.float(),
        "rollouts_learned": counts["learned"].float(),
        "rollouts_reused": counts["reused"].float(),
        "rollout_rows": float(n),
        "rollout_steps": float(comp.decoder_steps),
        "rollout_calls": float(comp.decoder_calls),
        "cells": num_cells.float() / max(b, 1),
        "tokens_per_cell": rolled.float() / num_cells.float().clamp(min=1.0),
        "rollin_ref_prob": float(p_in),
    }
    if opts.rollout_horizon > 0:
        stats["rollouts_cut"] = counts["cut"].float()
    return SearchResult(
        rollin=rollin,
        costs=costs,
        cell_mask=cells,
        reference=ext_ref[:, :t_cells],
        rollin_cost=scores[n:],
        candidates=cand,
        completions=comp,
        stats=stats,
    )


def complete_static(
    model: torch.nn.Module,
    rollin: RollIn,
    cand: Candidates,
    cap: torch.Tensor,
    cap_max: int,
    ref: torch.Tensor,
    ref_len: torch.Tensor,
    oracle: Cost,
    fixed_length: bool,
    chunk_size: int = 1024,
    horizon: int = 0,
) -> tuple[Completions, dict[str, torch.Tensor]]:
    """Complete every row of ``cand`` (:func:`searnn.search.rollout.complete` on the padded layout).

    cap: ``(B,)`` long most tokens of an output; cap_max: a host bound of ``cap``; horizon: most tokens decoded
    per learned roll-out before the oracle completes it (0 = to the end). Returns the completions
    (``num_learned`` / ``num_reference`` count rows as ints on the host: the padded row count; the device
    counts are in the dict: ``learned``, ``reference``, ``reused``, ``cut``, 0-d long tensors).
    """
    valid = cand.valid if cand.valid is not None else torch.ones_like(cand.learned)
    cap_n = cap.index_select(0, cand.b)  # (N,)
    width = max(cap_max + 1, rollin.num_cells)
    seq, seq_len = prefix_with_candidate(rollin, cand, width)
    grows = valid & (cand.a != EOS_ID) & (cand.t + 1 < cap_n)
    reference_rows = grows & ~cand.learned
    own = rollin.tokens[cand.b, cand.t] == cand.a
    reuse = grows & cand.learned & own & (cand.t >= rollin.last_deviation.index_select(0, cand.b))
    pos = torch.arange(width, device=seq.device)[None, :]
    length = rollin.cells.index_select(0, cand.b) - 1  # the roll-in's tokens, without its EOS
    own_seq = pad_to(rollin.tokens.index_select(0, cand.b), width, PAD_ID)
    own_seq = torch.where(pos < length[:, None], own_seq, torch.full_like(own_seq, PAD_ID))
    cut = torch.zeros_like(reuse)
    if horizon > 0:  # as a decoded roll-out: keep H tokens after the candidate when the budget allows more
        stop = cand.t + 1 + horizon
        over = reuse & (length >= stop) & (cap_n > stop)
        length = torch.where(over, stop, length)
        own_seq = torch.where(pos < length[:, None], own_seq, torch.full_like(own_seq, PAD_ID))
        cut = over
    seq = torch.where(reuse[:, None], own_seq, seq)
    seq_len = torch.where(reuse, length, seq_len)
    decode = grows & cand.learned & ~reuse
    steps = max(cap_max - 1, 0)  # the longest continuation: a candidate at cell 0 of the longest output
    if horizon > 0:
        steps = min(steps, horizon)
    n = len(cand)
    decoder_steps = decoder_calls = 0
    if steps > 0 and n > 0 and rollin.states is not None:  # no states: reference roll-outs only
        with region("learned"):
            decoder_steps, decoder_calls, stopped = _learned(
                model, rollin, cand, cap_n, decode, seq, seq_len, fixed_length, chunk_size, steps, horizon
            )
            cut = cut | stopped
    with region("reference"):
        b_rows = cand.b
        out, out_len = oracle.complete(seq, seq_len, ref.index_select(0, b_rows), ref_len.index_select(0, b_rows),
                                       width - 1)
        if out.shape[1] > seq.shape[1]:
            seq = pad_to(seq, out.shape[1], PAD_ID)
        out = pad_to(out, seq.shape[1], PAD_ID)
        completed = reference_rows | cut  # the reference roll-outs and the learned ones cut at the horizon
        seq = torch.where(completed[:, None], out, seq)
        seq_len = torch.where(completed, out_len, seq_len)
    counts = {"learned": decode.sum(), "reference": reference_rows.sum(), "reused": reuse.sum(), "cut": cut.sum()}
    return Completions(seq, seq_len, n, n, decoder_steps, decoder_calls, 0, 0), counts


def _learned(
    model: torch.nn.Module,
    rollin: RollIn,
    cand: Candidates,
    cap_n: torch.Tensor,
    decode: torch.Tensor,
    seq: torch.Tensor,
    seq_len: torch.Tensor,
    fixed_length: bool,
    chunk_size: int,
    steps: int,
    horizon: int = 0,
) -> tuple[int, int, torch.Tensor]:
    """Greedy continuations of the rows ``decode (N,)`` bool, written into ``seq`` / ``seq_len`` in place, by
    chunks of ``chunk_size`` rows that all run ``steps`` decoder steps (at most ``horizon`` tokens per row when
    > 0). Returns the decoder row-steps and calls (host counts of the padded work) and ``(N,)`` bool, the rows
    still going at the horizon with budget left (the caller completes them)."""
    if rollin.states is None:
        raise ValueError("learned roll-outs need the roll-in states (roll_in(..., need_states=True))")
    b_size = rollin.tokens.shape[0]
    start = cand.t + 1
    full = torch.where(decode, cap_n - start, torch.zeros_like(start))  # (N,) 0 = nothing to decode
    budget = full.clamp(max=horizon) if horizon > 0 else full
    stopped = torch.zeros_like(decode)
    state_rows = cand.t * b_size + cand.b
    n = len(cand)
    was_training = model.training
    model.eval()
    row_steps = calls = 0
    try:
        gates = model.token_gates() if hasattr(model, "step_cached") else None
        scorer = Scorer(model, fixed_length, seq.device)
        for lo in range(0, n, chunk_size):
            sl = slice(lo, lo + chunk_size)
            tokens, lengths = decode_masked(
                model, rollin.enc, rollin.states, budget[sl], cand.a[sl], state_rows[sl], steps, gates, scorer
            )
            _write_masked(seq[sl], start[sl], tokens, lengths)
            seq_len[sl] = torch.where(decode[sl], start[sl] + lengths, seq_len[sl])
            if horizon > 0:
                stopped[sl] = decode[sl] & (lengths == budget[sl]) & (budget[sl] < full[sl])
            row_steps += int(tokens.shape[0]) * steps
            calls += steps
    finally:
        model.train(was_training)
    return row_steps, calls, stopped


def _write_masked(seq: torch.Tensor, start: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor) -> None:
    """``seq[i, start[i] + j] = tokens[i, j]`` for ``j < lengths[i]``, in place (``seq (R, W)``, a view)."""
    if tokens.shape[1] == 0:
        return
    j = torch.arange(tokens.shape[1], device=tokens.device)[None, :]
    cols = (start[:, None] + j).clamp(max=seq.shape[1] - 1)  # (R, L); valid columns never clamp
    keep = j < lengths[:, None]
    seq.scatter_(1, cols, torch.where(keep, tokens, seq.gather(1, cols)))


def _accepts(fn: object, name: str) -> bool:
    try:
        return name in inspect.signature(fn).parameters  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


@torch.no_grad()
def decode_masked(
    model: torch.nn.Module,
    enc: Encoded,
    states: DecoderState,
    budget: torch.Tensor,
    first_tokens: torch.Tensor,
    state_rows: torch.Tensor,
    steps: int,
    gates: torch.Tensor | None,
    scorer: Scorer,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy decoding of R rows for exactly ``steps`` steps, ended rows masked instead of dropped.

    states: U shared rows; row r starts from ``states`` row ``state_rows[r]`` and feeds ``first_tokens[r]``;
    budget: ``(R,)`` long most tokens of row r (0: nothing). Returns ``tokens (R, steps)`` (PAD after each row's
    end) and ``lengths (R,)``: the same outputs as :func:`searnn.decoding.greedy` (a row stops at its first EOS
    or after ``budget`` tokens). The model must be in eval mode; the scorer's blocked tokens are never emitted.
    """
    r = int(first_tokens.shape[0])
    device = first_tokens.device
    tokens = torch.full((r, steps), PAD_ID, dtype=torch.long, device=device)
    lengths = torch.zeros(r, dtype=torch.long, device=device)
    alive = budget > 0
    fast = not model.training and scorer.fused and _accepts(getattr(model, "step_cached", None), "project")
    shared = getattr(model, "step_shared", None)
    shared_gates = shared is not None and gates is not None and fast and _accepts(shared, "gates")
    state = states
    inp = first_tokens
    for t in range(steps):
        projected = False
        if t == 0 and shared_gates:
            assert shared is not None
            scores, state = shared(enc, state, inp, state_rows, project=scorer.best, gates=gates)
            projected = True
        elif t == 0:
            scores, state = model.step(enc, state.index(state_rows), inp)
        elif gates is not None and fast:
            scores, state = model.step_cached(enc, state, inp, gates, project=scorer.best)
            projected = True
        else:
            scores, state = model.step(enc, state, inp)
        pred = scorer.tokens(scores) if projected else scorer.select(scores).argmax(dim=-1)
        emit = alive & (pred != EOS_ID)
        tokens[:, t] = torch.where(emit, pred, torch.full_like(pred, PAD_ID))
        lengths += emit.long()
        alive = emit & (budget > t + 1)
        inp = pred
    return tokens, lengths
