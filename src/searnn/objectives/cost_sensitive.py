"""Cost-sensitive losses of SeaRNN (Leblond et al., ICLR 2018, section 3 and appendix C).

Every loss is a pure function of one cell's scores and costs, batched over M cells::

    loss(logits (M, V), costs (M, V), *, scale: float, prefer: (M,) long | None) -> (M,) float

``costs`` holds the cost-to-go of every rolled-out token and ``+inf`` for the tokens that were not
rolled out (sub-sampling). The set ``S`` of a cell is the set of its tokens with a finite cost; every
loss is restricted to ``S`` (a masked softmax, the "sampled" sLL / sKL of the paper: unsampled tokens
receive no gradient). When ``S`` is the whole vocabulary these are the plain LL / KL losses.

Costs are only **min-shifted** per cell, ``c~(a) = c(a) - min_{b in S} c(b)`` (no rescaling, as in the
paper). The argmin target ``a*`` is chosen deterministically (:func:`argmin_target`): the ``prefer``
token (the reference token of the cell) when it ties for the minimum cost, else the lowest token id among
the minima. No random noise is added.

Rows whose ``S`` is empty have loss 0 (they should be masked out by the caller anyway). All losses are
finite when every cost of a cell ties. Costs must not require gradients: they are constants.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

TIE_TOL = 1e-6
"""Two costs closer than this (after the min-shift) tie for the argmin target."""

CostSensitiveLoss = Callable[..., torch.Tensor]


def shift_costs(costs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Min-shift costs per row.

    costs: ``(M, V)`` float with ``+inf`` outside the sampled set. Returns ``(shifted (M, V), sampled
    (M, V) bool)``: ``shifted`` is ``c - min_S c`` on the sampled set and 0 elsewhere (so it is always
    finite), ``sampled`` marks the finite entries.
    """
    sampled = torch.isfinite(costs)
    low = costs.min(dim=-1, keepdim=True).values
    low = torch.where(torch.isfinite(low), low, torch.zeros_like(low))
    shifted = torch.where(sampled, costs - low, torch.zeros_like(costs))
    return shifted, sampled


def min_cost_mask(costs: torch.Tensor) -> torch.Tensor:
    """``(M, V)`` bool: the sampled tokens whose cost ties with the row's minimum (within ``TIE_TOL``)."""
    shifted, sampled = shift_costs(costs)
    return sampled & (shifted <= TIE_TOL)


def argmin_target(costs: torch.Tensor, prefer: torch.Tensor | None = None) -> torch.Tensor:
    """The target token ``a*`` of each row: a minimum-cost sampled token.

    costs: ``(M, V)`` (inf outside the sampled set); prefer: ``(M,)`` long or None. Tie-breaking is
    deterministic: ``prefer[m]`` when it is among the minima of row m, else the lowest id among them.
    Rows with no sampled token get ``prefer`` (or 0). Returns ``(M,)`` long.
    """
    is_min = min_cost_mask(costs)
    lowest = is_min.to(torch.int8).argmax(dim=-1)  # first True (0 if none)
    if prefer is None:
        return lowest
    prefer = prefer.to(costs.device).long()
    prefer_ok = is_min.gather(1, prefer.clamp(0, costs.shape[1] - 1)[:, None]).squeeze(1)
    prefer_ok = prefer_ok & (prefer >= 0) & (prefer < costs.shape[1])
    has_any = is_min.any(dim=-1)
    return torch.where(prefer_ok | ~has_any, prefer.clamp(0, costs.shape[1] - 1), lowest)


def _masked_log_softmax(scores: torch.Tensor, sampled: torch.Tensor) -> torch.Tensor:
    """Log-softmax of ``scores (M, V)`` restricted to ``sampled``; 0 outside (finite everywhere).

    Rows without any sampled entry give all zeros."""
    neg_inf = torch.finfo(scores.dtype).min
    masked = scores.masked_fill(~sampled, neg_inf)
    logp = masked.log_softmax(dim=-1)
    return torch.where(sampled, logp, torch.zeros_like(logp))


def _row_has_samples(sampled: torch.Tensor) -> torch.Tensor:
    return sampled.any(dim=-1)


def ll_loss(
    logits: torch.Tensor, costs: torch.Tensor, *, scale: float = 1.0, prefer: torch.Tensor | None = None
) -> torch.Tensor:
    """Target learning LL (eq. 3; sLL when sub-sampled).

    ``l = -s(a*) + log sum_{b in S} exp s(b)``, i.e. the cross-entropy of the softmax restricted to S
    against the argmin-cost token ``a*``. ``scale`` is unused. Returns ``(M,)``.
    """
    del scale
    _, sampled = shift_costs(costs)
    target = argmin_target(costs, prefer)
    logp = _masked_log_softmax(logits, sampled)
    loss = -logp.gather(1, target[:, None]).squeeze(1)
    return torch.where(_row_has_samples(sampled), loss, torch.zeros_like(loss))


KL_TIES = ("split", "reference")
"""How the KL target treats tokens whose cost ties with the reference token's (``SearnnConfig.kl_ties``)."""


def kl_loss(
    logits: torch.Tensor,
    costs: torch.Tensor,
    *,
    scale: float = 1.0,
    prefer: torch.Tensor | None = None,
    ties: str = "split",
) -> torch.Tensor:
    """KL (eq. 4; sKL when sub-sampled).

    Target ``P_C(a) = softmax_{a in S}(-scale * c~(a))``, model ``P_M = softmax_S(s)``;
    ``l = KL(P_C || P_M) = sum_{a in S} P_C(a) (log P_C(a) - log P_M(a))``. This equals the reference
    code's cross-entropy ``-sum P_C log P_M`` minus the (constant) entropy of ``P_C``: same gradient,
    but 0 at the optimum. ``scale`` is the paper's alpha.

    ``ties``: ``split`` (the paper) shares the target mass equally between tokens of equal cost;
    ``reference`` gives the ``prefer`` token (the cell's reference token) the mass of every sampled token
    whose cost ties with its own (within ``TIE_TOL``), as LL's argmin does. That matters when the cost
    cannot tell two tokens apart although the data can: under chunk F1 (conlleval), ``I-X`` after ``O``
    opens a chunk exactly like ``B-X``, so a third of the cells of CoNLL-2000 tie ``B-X`` with ``I-X``
    and the split target teaches the model to open chunks with ``I-X``, which then merges adjacent
    chunks of the same type. Returns ``(M,)``.
    """
    if ties not in KL_TIES:
        raise ValueError(f"unknown ties {ties!r}; valid: {', '.join(KL_TIES)}")
    shifted, sampled = shift_costs(costs)
    log_target = _masked_log_softmax(-scale * shifted, sampled)
    target = log_target.exp() * sampled
    if ties == "reference" and prefer is not None:
        ref = prefer.to(costs.device).long().clamp(0, costs.shape[1] - 1)[:, None]  # (M, 1)
        ref_ok = sampled.gather(1, ref)  # (M, 1)
        tied = sampled & ref_ok & ((shifted - shifted.gather(1, ref)).abs() <= TIE_TOL)  # (M, V), ref included
        moved = (target * tied).sum(dim=-1, keepdim=True)
        target = torch.where(tied, torch.zeros_like(target), target).scatter_add(1, ref, moved)
        log_target = torch.where(target > 0, target.clamp(min=1e-38).log(), torch.zeros_like(target))
    logp = _masked_log_softmax(logits, sampled)
    loss = (target * (log_target - logp)).sum(dim=-1)
    return torch.where(_row_has_samples(sampled), loss, torch.zeros_like(loss))


def llcas_loss(
    logits: torch.Tensor, costs: torch.Tensor, *, scale: float = 1.0, prefer: torch.Tensor | None = None
) -> torch.Tensor:
    """Log-loss with cost-augmented softmax LLCAS (eq. 6, appendix C.1).

    ``l = -(s(a*) + scale c~(a*)) + log sum_{b in S} exp(s(b) + scale c~(b))`` with ``c~(a*) = 0``.
    Returns ``(M,)``.
    """
    shifted, sampled = shift_costs(costs)
    target = argmin_target(costs, prefer)
    augmented = logits + scale * shifted
    logp = _masked_log_softmax(augmented, sampled)
    loss = -logp.gather(1, target[:, None]).squeeze(1)
    return torch.where(_row_has_samples(sampled), loss, torch.zeros_like(loss))


def hinge_loss(
    logits: torch.Tensor, costs: torch.Tensor, *, scale: float = 1.0, prefer: torch.Tensor | None = None
) -> torch.Tensor:
    """Structured hinge SHL (eq. 7).

    ``l = max_{b in S}(s(b) + scale c~(b)) - (s(a*) + scale c~(a*))`` (>= 0). Returns ``(M,)``.
    """
    shifted, sampled = shift_costs(costs)
    target = argmin_target(costs, prefer)
    augmented = logits + scale * shifted
    neg_inf = torch.finfo(augmented.dtype).min
    best = augmented.masked_fill(~sampled, neg_inf).max(dim=-1).values
    loss = best - augmented.gather(1, target[:, None]).squeeze(1)
    return torch.where(_row_has_samples(sampled), loss, torch.zeros_like(loss))


LOSSES: dict[str, CostSensitiveLoss] = {
    "ll": ll_loss,
    "kl": kl_loss,
    "llcas": llcas_loss,
    "hinge": hinge_loss,
}
"""Cost-sensitive losses by name (``SearnnConfig.loss``)."""
