"""The SeaRNN search: roll in, choose (cell, token) pairs, roll out, score, return the cost tensor.

:func:`search` runs the whole pipeline of one training step (docs/METHODS.md §2, steps 1-5) with
vectorised tensor code (loops run over time steps only):

1. roll in (:mod:`searnn.search.rollin`), keeping every cell's logits and decoder state;
2. choose cells and tokens as boolean masks (:mod:`searnn.search.exploration`) and flatten them into
   candidate index tensors ``(b, t, a)``;
3. draw learned vs reference roll-outs and complete every candidate (:mod:`searnn.search.rollout`);
4. score every completed candidate, and the roll-in sequences themselves, in **one** batched cost call
   (by length buckets, :mod:`searnn.search.bucketing`);
5. scatter the costs into a ``(B, T, V)`` tensor, ``+inf`` where nothing was rolled out.

The costs are constants (no autograd history); only ``result.rollin.logits`` carries gradient.
Profiled regions (:mod:`searnn.profiling`, off by default): ``rollin``, ``explore``, ``rollout`` (with
``learned``, ``reference`` and the decoder's regions inside), ``cost``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch

from searnn.costs.base import Cost, pad_to
from searnn.data.batch import Batch
from searnn.data.vocab import BOS_ID, PAD_ID
from searnn.decoding.greedy import Scorer
from searnn.profiling import region
from searnn.search.bucketing import bucketed_cost
from searnn.search.exploration import (
    extended_reference,
    forced_tokens,
    last_cells,
    sample_tokens,
    select_cells,
)
from searnn.search.rollin import RollIn, roll_in
from searnn.search.rollout import Candidates, Completions, complete, draw_learned
from searnn.search.shortlist import build_shortlist

STATIC_SHAPES = ("auto", "on", "off")
"""Search engine (``SearnnConfig.static_shapes``): ``on`` the static-shape search (:mod:`searnn.search.static`),
``off`` the dynamic one, ``auto`` static when the model is on a CUDA device."""

SPECIAL_TOKENS = ("rollout", "drop")
"""What ``sample_tokens='all'`` does with the tokens no decoder emits (``SearnnConfig.special_tokens``)."""


@dataclass(frozen=True)
class SearchOptions:
    """Options of :func:`search` (see :class:`searnn.objectives.searnn.SearnnConfig` for their meaning)."""

    rollin: str = "learned"
    rollin_ref_prob: float = 0.5
    rollout: str = "mixed"
    rollout_ref_prob: float = 0.5
    mix_per: str = "sequence"
    sample_tokens: str = "all"
    num_tokens: int = 5
    bias_temperature: float = 2.0
    gt_neighbors: int = 0
    num_cells: int = 0
    rollout_batch_size: int = 1024
    max_len_ratio: float = 1.5
    max_len_extra: int = 2
    rollout_vocab: str = "full"
    rollout_horizon: int = 0
    special_tokens: str = "rollout"
    static_shapes: str = "auto"


@dataclass
class SearchResult:
    """Output of :func:`search` for B sequences and T roll-in cells.

    rollin: the :class:`RollIn` (``rollin.logits (B, T, V)`` carries the gradient);
    costs: ``(B, T, V)`` float, cost of each rolled-out (cell, token), ``+inf`` elsewhere (constant);
    cell_mask: ``(B, T)`` bool, the cells rolled out; reference: ``(B, T)`` long, the reference token by
    position (EOS from the EOS cell on), the preferred target on cost ties; rollin_cost: ``(B,)`` cost of
    each roll-in sequence itself; candidates / completions: the flat roll-outs (for inspection);
    stats: counters for logging (floats; 0-d tensors in the static-shape search, converted by the caller
    after the step).
    """

    rollin: RollIn
    costs: torch.Tensor
    cell_mask: torch.Tensor
    reference: torch.Tensor
    rollin_cost: torch.Tensor
    candidates: Candidates
    completions: Completions
    stats: dict[str, float | torch.Tensor] = field(default_factory=dict)


def output_cap(ref_len: torch.Tensor, fixed_length: bool, ratio: float, extra: int) -> torch.Tensor:
    """``(B,)`` most tokens of any roll-in / roll-out output: the reference length on fixed-length
    tasks, else ``ceil(ratio * ref_len) + extra`` (at least ``ref_len``)."""
    if fixed_length:
        return ref_len.clone()
    cap = torch.ceil(ref_len.double() * ratio).long() + extra
    return torch.maximum(cap, ref_len)


def static_unsupported(opts: SearchOptions) -> str:
    """The option the static-shape search does not support in ``opts`` (as typed on the command line), or ''."""
    if opts.rollout_vocab != "full":
        return "--rollout-vocab shortlist"
    return ""


def use_static(opts: SearchOptions, model: torch.nn.Module) -> bool:
    """Whether :func:`search` runs the static-shape search: ``static_shapes='on'``, or ``'auto'`` with the model
    on a CUDA device and every option supported (:func:`static_unsupported`)."""
    if opts.static_shapes == "on":
        return True
    if opts.static_shapes != "auto" or static_unsupported(opts):
        return False
    param = next(iter(model.parameters()), None)
    return param is not None and param.device.type == "cuda"


NEVER_DRAWN = (PAD_ID, BOS_ID)
"""Tokens the samplers never draw: decoders never emit them. ``sample_tokens='all'`` still rolls them
out by default (``special_tokens='rollout'``), so that S is the whole vocabulary and LL / KL are exactly
the full-softmax losses; ``special_tokens='drop'`` removes them from the candidates and from S."""


def choose_tokens(
    rollin: RollIn, batch: Batch, ref_len: torch.Tensor, fixed_length: bool, opts: SearchOptions
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The (cell, token) pairs to roll out, shared by both search engines: ``(cells (B, T) bool, ext_ref
    (B, max(T, T_ref)) long, chosen (B, T, V) bool)``: the chosen cells (``opts.num_cells``), the extended
    reference, and the tokens drawn at those cells (forced tokens included, never PAD/BOS with
    ``special_tokens='drop'``)."""
    _, t_cells, v = rollin.logits.shape
    cells = select_cells(rollin.cell_mask, last_cells(rollin.cells, t_cells), opts.num_cells)
    ext_ref = extended_reference(batch.tgt, batch.tgt_len, max(t_cells, batch.tgt.shape[1]))
    forced = forced_tokens(ext_ref, ref_len, t_cells, v, opts.gt_neighbors, add_eos=not fixed_length)
    chosen = sample_tokens(
        opts.sample_tokens, opts.num_tokens, forced, rollin.logits, opts.bias_temperature, exclude=NEVER_DRAWN
    )
    if opts.special_tokens == "drop" and opts.sample_tokens == "all":
        for token in NEVER_DRAWN:  # never emitted: no candidates, not in the loss's set (one column at a
            chosen[:, :, token] = False  # time: a list index would be a host->device copy on a GPU)
    chosen &= cells[:, :, None]
    return cells, ext_ref, chosen


def scoring_rows(
    comp: Completions, rollin: RollIn, cb: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What one cost call scores, shared by both engines: the N completed candidates, then the B roll-in
    sequences, as ``(hyp (N + B, W) long, hyp_len (N + B,) long, rows (N + B,) long)``, ``rows`` naming each
    hypothesis's example (its reference)."""
    b, t_cells = rollin.tokens.shape[0], rollin.logits.shape[1]
    width = max(comp.seq.shape[1], t_cells)
    hyp = torch.cat([pad_to(comp.seq, width, PAD_ID), pad_to(rollin.tokens, width, PAD_ID)], dim=0)
    hyp_len = torch.cat([comp.seq_len, rollin.cells - 1])
    rows = torch.cat([cb, torch.arange(b, device=cb.device)])
    return hyp, hyp_len, rows


def search(
    model: torch.nn.Module,
    batch: Batch,
    cost: Cost,
    fixed_length: bool,
    opts: SearchOptions,
    rollin_ref_prob: float | None = None,
    frequent: torch.Tensor | None = None,
) -> SearchResult:
    """Run the search for ``batch`` (see the module docstring).

    model: a :class:`searnn.models.Seq2Seq` (its mode is kept for the roll-in; roll-outs run in eval
    mode); cost: the task cost with its oracle; rollin_ref_prob: overrides ``opts.rollin_ref_prob``
    (scheduled value); frequent: ``(K,)`` long, the most frequent target tokens, part of the shortlist
    when ``opts.rollout_vocab == 'shortlist'`` (:mod:`searnn.search.shortlist`).
    """
    if use_static(opts, model):
        from searnn.search.static import static_search

        return static_search(model, batch, cost, fixed_length, opts, rollin_ref_prob)
    p_in = opts.rollin_ref_prob if rollin_ref_prob is None else rollin_ref_prob
    ref_len = batch.tgt_len - 1
    cap = output_cap(ref_len, fixed_length, opts.max_len_ratio, opts.max_len_extra)
    with region("rollin"):
        rollin = roll_in(
            model, batch, opts.rollin, p_in, cap, fixed_length, oracle=cost, need_states=opts.rollout != "reference"
        )
    b, t_cells, v = rollin.logits.shape
    device = batch.tgt.device

    with torch.no_grad(), region("explore"):
        cells, ext_ref, tokens = choose_tokens(rollin, batch, ref_len, fixed_length, opts)
        flat = tokens.nonzero()  # (N, 3), rows in (b, t, a) order
        cb, ct, ca = flat[:, 0], flat[:, 1], flat[:, 2]
        learned = draw_learned(opts.rollout, opts.rollout_ref_prob, cb, b, opts.mix_per)
        cand = Candidates(cb, ct, ca, learned)
        shortlist_stats: dict[str, float] = {}
        scorer = None
        if opts.rollout_vocab == "shortlist":
            base = torch.zeros(0, dtype=torch.long) if frequent is None else frequent
            shortlist = build_shortlist(batch.tgt, ca, base, v)
            scorer = Scorer(model, fixed_length, device, vocab=shortlist, stats=shortlist_stats)
            shortlist_stats["shortlist_size"] = float(v if scorer.vocab is None else scorer.vocab.numel())

    with torch.no_grad():
        start = time.perf_counter()
        with region("rollout"):
            comp = complete(
                model, rollin, cand, cap, batch.tgt, ref_len, cost, fixed_length, opts.rollout_batch_size,
                scorer=scorer, horizon=opts.rollout_horizon,
            )
        rollout_s = time.perf_counter() - start
        with region("cost"):
            # One cost call for every completed candidate and the B roll-in sequences.
            hyp, hyp_len, rows = scoring_rows(comp, rollin, cb)
            scores = bucketed_cost(cost, hyp, hyp_len, batch.tgt.index_select(0, rows), ref_len.index_select(0, rows))
            elapsed = time.perf_counter() - start
            n = len(cand)
            costs = torch.full((b, t_cells, v), math.inf, dtype=torch.float32, device=device)
            costs[cb, ct, ca] = scores[:n].float()

    stats = {
        "rollouts": float(n),
        "rollouts_learned": float(comp.num_learned),
        "rollouts_reused": float(comp.num_reused),
        "rollout_steps": float(comp.decoder_steps),
        "rollouts_per_s": n / max(elapsed, 1e-9),
        "rollout_calls": float(comp.decoder_calls),
        "rollout_s": rollout_s,
        "cost_s": elapsed - rollout_s,
        "cells": float(cells.sum()) / max(b, 1),
        "tokens_per_cell": n / max(float(cells.sum()), 1.0),
        "rollin_ref_prob": float(p_in),
    }
    if opts.rollout_horizon > 0:
        stats["rollouts_cut"] = float(comp.num_cut)
    if scorer is not None:
        stats["shortlist_size"] = shortlist_stats["shortlist_size"]
        checked = shortlist_stats.get("shortlist_checked", 0.0)
        # a shortlist holding every emittable token is the full vocabulary: agreement 1 by construction
        stats["shortlist_agree"] = shortlist_stats.get("shortlist_agree", 0.0) / checked if checked else 1.0
        stats["shortlist_checked"] = checked
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
