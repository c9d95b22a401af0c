"""Paired bootstrap over test sentences (searnn.paired) against sacreBLEU's own ``--paired-bs`` code."""

import random

import numpy as np
import pytest
from sacrebleu.metrics import BLEU
from sacrebleu.significance import PairedTest, Result, _paired_bs_test

from searnn.paired import (
    RESAMPLES,
    SEED,
    bleu_from_stats,
    estimate_ci,
    paired_bootstrap,
    resample_indices,
    resampled_stats,
    sentence_stats,
)

WORDS = "a man dog two red the is on in of plays ball".split()


def random_corpus(rng: random.Random, n: int, refs_per: int = 1) -> tuple[list[str], list[list[str]]]:
    """Hypotheses of two systems' worth of shape: n lines, and ``refs_per`` reference streams."""
    def sentence() -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 9)))

    refs = [[sentence() or "a" for _ in range(n)] for _ in range(refs_per)]
    hyps = [sentence() for _ in range(n)]
    return hyps, refs


def per_sentence(refs: list[list[str]]) -> list[list[list[str]]]:
    return [[stream[i].split() for stream in refs] for i in range(len(refs[0]))]


@pytest.mark.parametrize("refs_per", [1, 3])
def test_sentence_stats_equal_sacrebleu(refs_per):
    rng = random.Random(refs_per)
    hyps, refs = random_corpus(rng, 40, refs_per)
    ours = sentence_stats([h.split() for h in hyps], per_sentence(refs))
    theirs = np.array(BLEU(tokenize="none", force=True)._extract_corpus_statistics(hyps, refs))
    assert (ours == theirs).all()


def test_bleu_from_stats_equals_sacrebleu_corpus_score():
    rng = random.Random(5)
    scorer = BLEU(tokenize="none", force=True)
    for trial in range(30):
        hyps, refs = random_corpus(rng, rng.randint(1, 6))
        stats = sentence_stats([h.split() for h in hyps], per_sentence(refs))
        expected = scorer.corpus_score(hyps, refs).score
        assert bleu_from_stats(stats.sum(0)) == pytest.approx(expected, rel=1e-12, abs=1e-12), trial


def test_resampled_stats_equal_a_loop_over_resamples():
    rng = np.random.default_rng(0)
    stats = rng.integers(0, 9, size=(13, 10))
    idx = resample_indices(13, 50, seed=3)
    brute = np.stack([stats[row].sum(0) for row in idx])
    assert (resampled_stats(stats, idx) == brute).all()


def test_estimate_ci_matches_sacrebleu():
    from sacrebleu.significance import estimate_ci as theirs

    scores = np.random.default_rng(1).normal(30, 2, size=1000)
    assert estimate_ci(scores) == pytest.approx(theirs(scores), rel=1e-12)


@pytest.mark.parametrize("case", range(4))
def test_paired_bootstrap_equals_sacrebleu_paired_bs(case):
    """sacreBLEU's ``_paired_bs_test`` with its seed draws ``default_rng(12345).choice`` once; so does ours."""
    rng = random.Random(100 + case)
    n = 60 + 20 * case
    base, refs = random_corpus(rng, n)
    # the system: the baseline with some sentences replaced by the reference (better) or shuffled (worse)
    system = [refs[0][i] if rng.random() < 0.15 * case else base[i] for i in range(n)]
    metric = BLEU(tokenize="none", force=True)
    test = PairedTest([("base", base), ("system", system)], {"BLEU": metric}, refs, test_type="bs")
    _, scores = test()
    base_result: Result = scores["BLEU"][0]
    theirs: Result = scores["BLEU"][1]

    tok_refs = per_sentence(refs)
    ours = paired_bootstrap(sentence_stats([h.split() for h in base], tok_refs),
                            sentence_stats([h.split() for h in system], tok_refs))
    assert ours.resamples == RESAMPLES == test.n_samples and ours.seed == SEED
    assert ours.system == pytest.approx(theirs.score, abs=1e-9)
    assert ours.base == pytest.approx(base_result.score, abs=1e-9)
    assert ours.p == theirs.p_value
    # sacreBLEU computes the resampled precisions in float32: agreement to float32 rounding
    assert ours.system_mean == pytest.approx(theirs.mean, abs=1e-4)
    assert ours.system_ci == pytest.approx(theirs.ci, abs=1e-4)
    assert ours.base_mean == pytest.approx(base_result.mean, abs=1e-4)
    assert ours.base_ci == pytest.approx(base_result.ci, abs=1e-4)


def test_paired_bootstrap_with_given_indices_equals_the_direct_function():
    rng = random.Random(9)
    base, refs = random_corpus(rng, 50)
    system = [refs[0][i] if i % 3 == 0 else base[i] for i in range(50)]
    metric = BLEU(tokenize="none", force=True)
    bl_stats = metric._extract_corpus_statistics(base, refs)
    bl = Result(metric._aggregate_and_compute(bl_stats).score)
    _, out = _paired_bs_test({"BLEU": (bl_stats, bl)}, "system", system, refs, {"BLEU": metric},
                             n_samples=200, seed=7)
    tok_refs = per_sentence(refs)
    ours = paired_bootstrap(sentence_stats([h.split() for h in base], tok_refs),
                            sentence_stats([h.split() for h in system], tok_refs),
                            indices=resample_indices(50, 200, seed=7))
    assert ours.p == out["BLEU"].p_value
    assert ours.system_mean == pytest.approx(out["BLEU"].mean, abs=1e-4)
    assert ours.system_ci == pytest.approx(out["BLEU"].ci, abs=1e-4)


def test_a_system_against_itself_has_p_one_over_nothing_extreme():
    rng = random.Random(2)
    hyps, refs = random_corpus(rng, 30)
    stats = sentence_stats([h.split() for h in hyps], per_sentence(refs))
    res = paired_bootstrap(stats, stats)
    assert res.diff == 0.0 and res.base_ci == res.system_ci
    # every resampled difference is 0, so none exceeds the observed 0: p = 1 / (R + 1)
    assert res.p == 1 / (RESAMPLES + 1)
