"""Corpus metrics against sacreBLEU, seqeval, rapidfuzz and hand-computed values."""

from __future__ import annotations

import random

import pytest
import sacrebleu
from rapidfuzz.distance import Levenshtein
from seqeval.metrics import f1_score, precision_score, recall_score
from seqeval.metrics.sequence_labeling import precision_recall_fscore_support

from searnn.costs import pad_sequences, sentence_bleu_stats
from searnn.data.vocab import Vocab
from searnn.metrics import LOWER_IS_BETTER, METRICS, MetricResult, corpus_bleu_from_stats

WORDS = Vocab([f"w{i}" for i in range(10)])
TAGS = Vocab(["O", "B-NP", "I-NP", "B-VP", "I-VP", "B-PP", "I-PP"])


def rand_seqs(rng: random.Random, n: int, lo: int, hi: int, max_len: int, min_len: int = 0) -> list[list[int]]:
    return [[rng.randint(lo, hi) for _ in range(rng.randint(min_len, max_len))] for _ in range(n)]


def text(ids: list[int]) -> str:
    return " ".join(WORDS.itos[i] for i in ids)


def test_registry():
    assert set(METRICS) == set(LOWER_IS_BETTER) == {"cer", "edit", "bleu", "f1", "cider"}
    assert LOWER_IS_BETTER["cer"] and LOWER_IS_BETTER["edit"]
    assert not LOWER_IS_BETTER["bleu"] and not LOWER_IS_BETTER["f1"]
    # evaluate.score passes the examples as a fourth argument
    for name, vocab in [("cer", WORDS), ("edit", WORDS), ("bleu", WORDS), ("f1", TAGS)]:
        assert isinstance(METRICS[name]([[4]], [[[4]]], vocab, [None]).value, float)


def test_error_rates_golden():
    hyps = [[4, 5, 6], [4, 4], []]
    refs = [[[4, 7, 6]], [[4, 4, 5, 6]], [[5]]]
    # hamming: 1 + 2 + 1 = 4 errors; levenshtein: 1 + 2 + 1 = 4; 8 reference tokens
    for name in ("cer", "edit"):
        res = METRICS[name](hyps, refs, WORDS)
        assert isinstance(res, MetricResult) and res.signature
        assert res.value == pytest.approx(50.0)
        assert res.details["errors"] == 4 and res.details["ref_tokens"] == 8
    # a shift: hamming counts every position, levenshtein two edits
    assert METRICS["cer"]([[5, 6, 7]], [[[4, 5, 6]]], WORDS).value == pytest.approx(100.0)
    assert METRICS["edit"]([[5, 6, 7]], [[[4, 5, 6]]], WORDS).value == pytest.approx(200 / 3)


def test_error_rates_random():
    rng = random.Random(0)
    hyps, refs = rand_seqs(rng, 1100, 4, 8, 12), rand_seqs(rng, 1100, 4, 8, 12)  # > one 512-row chunk
    total = sum(len(r) for r in refs)
    lev = sum(Levenshtein.distance(h, r) for h, r in zip(hyps, refs, strict=True))
    ham = sum(
        sum(1 for p in range(max(len(h), len(r))) if p >= len(h) or p >= len(r) or h[p] != r[p])
        for h, r in zip(hyps, refs, strict=True)
    )
    ref_lists = [[r, [4]] for r in refs]  # extra references are ignored by these metrics
    assert METRICS["edit"](hyps, ref_lists, WORDS).value == pytest.approx(100 * lev / total)
    assert METRICS["cer"](hyps, ref_lists, WORDS).value == pytest.approx(100 * ham / total)


def test_bleu_matches_sacrebleu_single_and_multi_reference():
    rng = random.Random(1)
    hyps = rand_seqs(rng, 60, 4, 13, 15, min_len=1)
    refs1 = rand_seqs(rng, 60, 4, 13, 15, min_len=1)
    refs2 = rand_seqs(rng, 60, 4, 13, 15, min_len=1)
    res = METRICS["bleu"](hyps, [[r] for r in refs1], WORDS)
    expect = sacrebleu.corpus_bleu([text(h) for h in hyps], [[text(r) for r in refs1]], tokenize="none", force=True)
    assert res.value == pytest.approx(expect.score)
    assert res.details["bp"] == pytest.approx(expect.bp)
    assert res.details["precisions"] == pytest.approx(expect.precisions)
    assert "tok:none" in res.signature and "nrefs:1" in res.signature
    # a variable number of references per hypothesis (None in sacreBLEU's second stream)
    multi = [[r1, r2] if k % 2 else [r1] for k, (r1, r2) in enumerate(zip(refs1, refs2, strict=True))]
    res = METRICS["bleu"](hyps, multi, WORDS)
    stream2 = [text(r2) if k % 2 else None for k, r2 in enumerate(refs2)]
    expect = sacrebleu.corpus_bleu(
        [text(h) for h in hyps], [[text(r) for r in refs1], stream2], tokenize="none", force=True
    )
    assert res.value == pytest.approx(expect.score)


def test_bleu_golden_and_unk_never_matches():
    ref = [[WORDS.encode("w1 w2 w3 w4".split())]]
    assert METRICS["bleu"]([WORDS.encode("w1 w2 w3 w4".split())], ref, WORDS).value == pytest.approx(100.0)
    # "<unk> w2 w3 w4" against "<unk> w2 w3 w4": the unknown reference word cannot be matched
    unk = [3] + WORDS.encode("w2 w3 w4".split())
    res = METRICS["bleu"]([unk], [[unk]], WORDS)
    assert res.details["counts"] == [3, 2, 1, 0] and res.details["unk_matches"] is False


def test_corpus_bleu_from_sentence_stats_equals_sacrebleu():
    rng = random.Random(2)
    hyps, refs = rand_seqs(rng, 80, 4, 9, 15, min_len=1), rand_seqs(rng, 80, 4, 9, 15, min_len=1)
    stats = sentence_bleu_stats(*pad_sequences(hyps), *pad_sequences(refs))
    expect = sacrebleu.corpus_bleu(
        [text(h) for h in hyps], [[text(r) for r in refs]], tokenize="none", force=True, smooth_method="none"
    )
    assert corpus_bleu_from_stats(stats) == pytest.approx(expect.score)


def tag_corpus(rng: random.Random, n: int) -> tuple[list[list[str]], list[list[str]]]:
    """Gold tag sequences and noisy same-length predictions (I- after O included)."""
    tags = TAGS.itos[4:]
    gold = [[rng.choice(tags) for _ in range(rng.randint(1, 10))] for _ in range(n)]
    pred = [[t if rng.random() < 0.75 else rng.choice(tags) for t in g] for g in gold]
    return gold, pred


def test_f1_matches_seqeval():
    rng = random.Random(3)
    gold, pred = tag_corpus(rng, 700)  # > one 512-row chunk
    res = METRICS["f1"]([TAGS.encode(p) for p in pred], [[TAGS.encode(g)] for g in gold], TAGS)
    assert res.value == pytest.approx(100 * f1_score(gold, pred))
    assert res.details["precision"] == pytest.approx(100 * precision_score(gold, pred))
    assert res.details["recall"] == pytest.approx(100 * recall_score(gold, pred))
    assert res.signature == "conlleval-style chunk F1"
    p, r, f, support = precision_recall_fscore_support(gold, pred, average=None)
    names = sorted(res.details["per_type"])  # seqeval orders types by name
    assert [res.details["per_type"][k]["f1"] for k in names] == pytest.approx(list(100 * f))
    assert [res.details["per_type"][k]["ref_chunks"] for k in names] == list(support)


def test_f1_golden():
    enc = TAGS.encode
    hyps = [enc("B-NP I-NP O B-VP".split()), enc("I-NP I-NP O".split())]
    refs = [[enc("B-NP I-NP O B-VP".split())], [enc("B-NP I-NP B-NP".split())]]
    res = METRICS["f1"](hyps, refs, TAGS)
    # 3 predicted chunks, all correct; 4 gold chunks -> P = 100, R = 75, F1 = 600/7
    assert res.details["precision"] == pytest.approx(100.0) and res.details["recall"] == pytest.approx(75.0)
    assert res.value == pytest.approx(600 / 7)
    assert METRICS["f1"]([enc(["O"])], [[enc(["O"])]], TAGS).value == 0.0  # no chunk at all: conlleval's 0
