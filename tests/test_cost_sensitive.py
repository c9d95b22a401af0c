"""Cost-sensitive losses (LL, KL, LLCAS, hinge) against hand-written formulas, ties and masking."""

from __future__ import annotations

import math

import pytest
import torch

from searnn.objectives.cost_sensitive import (
    LOSSES,
    argmin_target,
    hinge_loss,
    kl_loss,
    ll_loss,
    llcas_loss,
    min_cost_mask,
    shift_costs,
)

INF = math.inf
LOGITS = [[1.0, 2.0, 0.5, -1.0], [0.3, -0.2, 0.9, 0.0]]
COSTS = [[0.3, 0.1, INF, 0.5], [0.2, 0.2, 0.6, INF]]  # row 1: tokens 0 and 1 tie for the minimum


def tensors():
    return torch.tensor(LOGITS, requires_grad=True), torch.tensor(COSTS)


def lse(xs):
    m = max(xs)
    return m + math.log(sum(math.exp(x - m) for x in xs))


def sampled(row):
    return [a for a, c in enumerate(COSTS[row]) if c != INF]


def shifted(row):
    low = min(COSTS[row][a] for a in sampled(row))
    return {a: COSTS[row][a] - low for a in sampled(row)}


TARGETS = [1, 0]  # row 1 ties between 0 and 1: lowest id without a preferred token


def expected_ll(row):
    s = LOGITS[row]
    return -s[TARGETS[row]] + lse([s[a] for a in sampled(row)])


def expected_kl(row, alpha):
    s, c = LOGITS[row], shifted(row)
    z_c = lse([-alpha * c[a] for a in sampled(row)])
    z_m = lse([s[a] for a in sampled(row)])
    total = 0.0
    for a in sampled(row):
        log_pc = -alpha * c[a] - z_c
        total += math.exp(log_pc) * (log_pc - (s[a] - z_m))
    return total


def expected_llcas(row, alpha):
    s, c = LOGITS[row], shifted(row)
    a_star = TARGETS[row]
    return -(s[a_star] + alpha * c[a_star]) + lse([s[a] + alpha * c[a] for a in sampled(row)])


def expected_hinge(row, alpha):
    s, c = LOGITS[row], shifted(row)
    a_star = TARGETS[row]
    return max(s[a] + alpha * c[a] for a in sampled(row)) - (s[a_star] + alpha * c[a_star])


@pytest.mark.parametrize("alpha", [1.0, 7.5])
def test_losses_equal_hand_written_formulas(alpha: float) -> None:
    logits, costs = tensors()
    cases = [
        (ll_loss, lambda r: expected_ll(r)),
        (kl_loss, lambda r: expected_kl(r, alpha)),
        (llcas_loss, lambda r: expected_llcas(r, alpha)),
        (hinge_loss, lambda r: expected_hinge(r, alpha)),
    ]
    for fn, formula in cases:
        got = fn(logits, costs, scale=alpha).detach()
        assert got.shape == (2,)
        for row in range(2):
            assert float(got[row]) == pytest.approx(formula(row), rel=1e-5, abs=1e-6), fn.__name__


def test_ll_equals_cross_entropy_with_full_vocabulary() -> None:
    logits = torch.randn(5, 7)
    target = torch.tensor([0, 3, 6, 2, 2])
    costs = torch.ones(5, 7)
    costs[torch.arange(5), target] = 0.0
    expected = torch.nn.functional.cross_entropy(logits, target, reduction="none")
    torch.testing.assert_close(ll_loss(logits, costs), expected)


def test_kl_equals_label_smoothing_for_hamming_like_costs() -> None:
    """Uniform costs except the reference (paper App. C.1): the KL target is label smoothing."""
    v, alpha = 6, 2.0
    logits = torch.randn(3, v)
    target = torch.tensor([1, 4, 5])
    costs = torch.full((3, v), 0.25)
    costs[torch.arange(3), target] = 0.0
    on = 1.0 / (1.0 + (v - 1) * math.exp(-alpha * 0.25))
    q = torch.full((3, v), (1 - on) / (v - 1))
    q[torch.arange(3), target] = on
    logp = logits.log_softmax(-1)
    expected = (q * (q.log() - logp)).sum(-1)
    torch.testing.assert_close(kl_loss(logits, costs, scale=alpha), expected)


def test_tie_breaking_prefers_the_reference_then_the_lowest_id() -> None:
    costs = torch.tensor([[0.5, 0.2, 0.2, INF], [0.5, 0.2, 0.2, INF], [0.5, 0.2, 0.2, INF], [INF, 0.2, 0.2, 0.2]])
    prefer = torch.tensor([2, 0, 3, 3])
    assert argmin_target(costs).tolist() == [1, 1, 1, 1]
    # preferred token kept when it ties for the minimum, else lowest id among the minima
    assert argmin_target(costs, prefer).tolist() == [2, 1, 1, 3]
    # near-ties within the tolerance tie; clear gaps do not
    near = torch.tensor([[0.2 + 1e-8, 0.2, 0.3]])
    assert min_cost_mask(near).tolist() == [[True, True, False]]
    assert argmin_target(near, torch.tensor([0])).tolist() == [0]


@pytest.mark.parametrize("name", list(LOSSES))
def test_losses_are_finite_when_all_costs_tie(name: str) -> None:
    logits = torch.randn(4, 6, requires_grad=True)
    costs = torch.full((4, 6), 0.3)
    costs[1, :3] = INF
    loss = LOSSES[name](logits, costs, scale=100.0, prefer=torch.tensor([2, 4, 0, 5]))
    assert torch.isfinite(loss).all()
    loss.sum().backward()
    assert torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("name", list(LOSSES))
def test_unsampled_tokens_get_no_gradient_and_empty_rows_no_loss(name: str) -> None:
    logits = torch.randn(3, 5, requires_grad=True)
    costs = torch.tensor([[0.1, INF, 0.4, INF, 0.0], [INF] * 5, [0.0, 0.5, INF, 0.2, 0.9]])
    loss = LOSSES[name](logits, costs, scale=3.0)
    assert torch.isfinite(loss).all() and float(loss[1].detach()) == 0.0
    assert (loss >= -1e-6).all()
    (loss * torch.tensor([1.0, 1.0, 2.0])).sum().backward()
    grad = logits.grad
    assert torch.isfinite(grad).all()
    assert (grad[torch.isinf(costs)] == 0).all()


def test_losses_vanish_at_their_optimum() -> None:
    """A model that puts (almost) all mass on the min-cost token has ~0 LL / hinge / LLCAS loss; a model
    equal to the KL target has 0 KL."""
    costs = torch.tensor([[0.3, 0.0, 0.6, INF]])
    sharp = torch.tensor([[0.0, 50.0, 0.0, 3.0]])
    for fn in (ll_loss, llcas_loss):
        assert float(fn(sharp, costs, scale=1.0)[0]) < 1e-6
    assert float(hinge_loss(sharp, costs, scale=1.0)[0]) == 0.0
    target_logits = torch.tensor([[-0.3 * 4, 0.0, -0.6 * 4, 17.0]])
    assert float(kl_loss(target_logits, costs, scale=4.0)[0]) == pytest.approx(0.0, abs=1e-6)


def test_shift_costs() -> None:
    shifted_costs, mask = shift_costs(torch.tensor([[2.0, INF, 3.0], [INF, INF, INF]]))
    assert shifted_costs.tolist() == [[0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]
    assert mask.tolist() == [[True, False, True], [False, False, False]]


def test_kl_reference_ties_moves_tied_mass_to_the_reference_token() -> None:
    """kl ties=reference: brute force per row; equal to split when nothing ties with the reference."""
    inf = float("inf")
    logits = torch.tensor([[0.3, -1.0, 2.0, 0.5], [1.0, 0.0, -0.5, 0.2], [0.1, 0.2, 0.3, 0.4]])
    costs = torch.tensor([[0.0, 0.0, 0.5, inf], [0.2, 0.0, 0.2, 0.7], [0.0, 0.1, 0.3, 0.2]])
    prefer = torch.tensor([1, 2, 0])
    scale = 3.0
    got = kl_loss(logits, costs, scale=scale, prefer=prefer, ties="reference")
    for m in range(3):
        s = [a for a in range(4) if math.isfinite(costs[m, a])]
        low = min(float(costs[m, a]) for a in s)
        w = {a: math.exp(-scale * (float(costs[m, a]) - low)) for a in s}
        z = sum(w.values())
        p = {a: w[a] / z for a in s}
        r = int(prefer[m])
        for a in s:
            if a != r and abs(float(costs[m, a]) - float(costs[m, r])) <= 1e-6:
                p[r] += p[a]
                p[a] = 0.0
        zs = sum(math.exp(float(logits[m, a])) for a in s)
        want = sum(p[a] * (math.log(p[a]) - (float(logits[m, a]) - math.log(zs))) for a in s if p[a] > 0)
        assert abs(float(got[m]) - want) < 1e-5, (m, float(got[m]), want)
    # row 2: the reference token ties with nothing -> same as the paper's split target
    split = kl_loss(logits, costs, scale=scale, prefer=prefer)
    assert abs(float(got[2]) - float(split[2])) < 1e-6
    assert float(got[0]) != float(split[0])
    with pytest.raises(ValueError, match="ties"):
        kl_loss(logits, costs, ties="bogus")
