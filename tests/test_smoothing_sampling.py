"""Stratified Hamming / edit samplers of searnn.smoothing.sampling."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch
from scipy.special import comb
from scipy.stats import chisquare

from searnn.data.vocab import EOS_ID, PAD_ID, UNK_ID
from searnn.smoothing import sampling

V = 20


def _analytic(length: int, n_alt: int, tau: float) -> np.ndarray:
    d = np.arange(length + 1)
    w = np.array([comb(length, k, exact=True) for k in d], dtype=float) * float(n_alt) ** d * np.exp(-d / tau)
    return w / w.sum()


def _targets(lengths: list[int], width: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    seq = torch.full((len(lengths), width), PAD_ID, dtype=torch.long)
    for i, n in enumerate(lengths):
        seq[i, :n] = torch.randint(4, V, (n,), generator=g)
        seq[i, n] = EOS_ID
    return seq, torch.tensor(lengths)


def _chi2_pvalue(observed: np.ndarray, expected_p: np.ndarray) -> float:
    total = observed.sum()
    exp = expected_p / expected_p.sum() * total
    # merge bins with a small expectation into their neighbour
    obs_m, exp_m = [], []
    acc_o = acc_e = 0.0
    for o, e in zip(observed, exp, strict=True):
        acc_o += o
        acc_e += e
        if acc_e >= 5:
            obs_m.append(acc_o)
            exp_m.append(acc_e)
            acc_o = acc_e = 0.0
    if acc_e > 0:
        obs_m[-1] += acc_o
        exp_m[-1] += acc_e
    return float(chisquare(obs_m, exp_m).pvalue)


def test_log_distance_distribution_is_normalised_and_finite():
    lengths = torch.tensor([0, 1, 5, 100])
    lp = sampling.hamming_distance_log_probs(lengths, torch.tensor([49_999] * 4), 0.05, 100)
    probs = lp.exp()
    assert torch.isfinite(lp[3]).all()  # no overflow for T = 100, V = 50k
    assert torch.allclose(probs.sum(1), torch.ones(4), atol=1e-5)
    assert lp[0, 0] == 0 and torch.isinf(lp[0, 1:]).all()
    assert torch.allclose(probs[2, :6].double(), torch.as_tensor(_analytic(5, 49_999, 0.05)), atol=1e-6)
    none = sampling.hamming_distance_log_probs(torch.tensor([4]), torch.tensor([0]), 1.0, 4)
    assert none[0, 0] == 0 and torch.isinf(none[0, 1:]).all()  # no substitute: d = 0


@pytest.mark.parametrize("tau", [0.3, 1.0])
def test_sampled_distances_follow_the_analytic_distribution(tau):
    """Chi-square goodness of fit, per sentence length (one distribution per sentence, not per batch)."""
    lengths = [3, 9] * 100
    seq, lens = _targets(lengths, 10)
    pool = sampling.full_pool(V, len(lengths), "cpu")
    g = torch.Generator().manual_seed(1234)
    s = sampling.hamming_sample(seq, lens, pool, num_samples=100, tau=tau, generator=g)
    for n in (3, 9):
        rows = lens == n
        obs = np.bincount(s.distance[rows].flatten().numpy(), minlength=n + 1)
        assert _chi2_pvalue(obs, _analytic(n, V - 4 - 1, tau)) > 1e-3


def test_samples_are_at_exactly_the_sampled_distance():
    seq, lens = _targets([0, 1, 4, 7, 9], 10, seed=3)
    seq[3, 2] = UNK_ID  # not in the pool: still substitutable
    pool = sampling.full_pool(V, 5, "cpu")
    s = sampling.hamming_sample(seq, lens, pool, 50, tau=2.0, generator=torch.Generator().manual_seed(0))
    changed = s.tokens != seq[:, None, :]
    assert (changed.sum(-1) == s.distance).all()
    inside = torch.arange(10) < lens[:, None]
    assert not (changed & ~inside[:, None, :]).any()  # EOS and PAD untouched
    assert (s.tokens[changed] >= 4).all()  # never a special
    assert (s.lengths == lens[:, None]).all()
    assert s.distance.max() > 0


def test_batch_and_refs_pools_are_respected():
    seq, lens = _targets([6, 8, 5], 9, seed=4)
    inside = torch.arange(9) < lens[:, None]
    batch_tokens = set(seq[inside].tolist())
    g = torch.Generator().manual_seed(0)
    bpool = sampling.batch_pool(seq, inside, V)
    s = sampling.hamming_sample(seq, lens, bpool, 200, tau=5.0, generator=g)
    changed = s.tokens != seq[:, None, :]
    assert set(s.tokens[changed].tolist()) <= batch_tokens
    rpool = sampling.refs_pool(seq, inside, V)
    assert rpool.sizes.tolist() == [len(set(seq[i, : lens[i]].tolist())) for i in range(3)]
    s = sampling.hamming_sample(seq, lens, rpool, 200, tau=5.0, generator=g)
    changed = s.tokens != seq[:, None, :]
    for i in range(3):
        own = set(seq[i, : lens[i]].tolist())
        assert set(s.tokens[i][changed[i]].tolist()) <= own
    assert (s.tokens[changed] != seq[:, None, :].expand_as(s.tokens)[changed]).all()


def test_single_token_refs_pool_never_substitutes():
    seq = torch.tensor([[7, 7, 7, EOS_ID]])
    inside = torch.arange(4) < 3
    pool = sampling.refs_pool(seq, inside[None], V)
    s = sampling.hamming_sample(seq, torch.tensor([3]), pool, 20, tau=10.0)
    assert (s.distance == 0).all() and (s.tokens == seq[:, None]).all()


def test_sequence_frequencies_match_log_q():
    """Tiny space (T = 2, pool of 3, 2 alternatives per position): empirical sequence frequencies
    match exp(log_q), so positions and substitutes are uniform and log_q is exact."""
    seq = torch.tensor([[4, 5, EOS_ID]]).repeat(400, 1)
    lens = torch.full((400,), 2)
    pool = sampling.SubstitutionPool(torch.tensor([[4, 5, 6]]), torch.full((400,), 3))
    s = sampling.hamming_sample(seq, lens, pool, 100, tau=1.0, generator=torch.Generator().manual_seed(9))
    keys = [tuple(x) for x in s.tokens[..., :2].reshape(-1, 2).tolist()]
    counts = Counter(keys)
    assert len(counts) == 9
    logq = {}
    for k, lq in zip(keys, s.log_q.flatten().tolist(), strict=True):
        logq.setdefault(k, lq)
    assert math.isclose(sum(math.exp(v) for v in logq.values()), 1.0, rel_tol=1e-5)
    order = sorted(counts)
    obs = np.array([counts[k] for k in order], dtype=float)
    assert _chi2_pvalue(obs, np.array([math.exp(logq[k]) for k in order])) > 1e-3


def test_edit_samples():
    seq, lens = _targets([0, 3, 6, 8], 9, seed=5)
    pool = sampling.full_pool(V, 4, "cpu")
    s = sampling.edit_sample(seq, lens, pool, 64, tau=2.0, generator=torch.Generator().manual_seed(2))
    b, num, width = s.tokens.shape
    pos = torch.arange(width)
    # EOS right after the tokens, PAD after it, no special inside
    assert (s.tokens.gather(2, s.lengths[..., None]).squeeze(-1) == EOS_ID).all()
    assert (s.tokens[pos > s.lengths[..., None]] == PAD_ID).all()
    assert (s.tokens[pos < s.lengths[..., None]] >= 4).all()
    assert (s.lengths != lens[:, None]).any()  # insertions / deletions happened
    assert torch.isfinite(s.log_q).all()
    for i in range(b):
        ref = seq[i, : lens[i]].tolist()
        for j in range(num):
            hyp = s.tokens[i, j, : s.lengths[i, j]].tolist()
            assert abs(len(hyp) - len(ref)) <= s.distance[i, j]
            assert _lev(hyp, ref) <= s.distance[i, j]


def _lev(a: list[int], b: list[int]) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]
