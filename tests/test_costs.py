"""Costs against independent references: plain Python Hamming, rapidfuzz Levenshtein, a brute-force
smoothed BLEU (and its exact relation to sacreBLEU's add-k smoothing), seqeval chunks."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest
import sacrebleu
import torch
from rapidfuzz.distance import Levenshtein
from seqeval.metrics.sequence_labeling import get_entities

from searnn.costs import (
    COSTS,
    BleuCost,
    edit_distance_rows,
    levenshtein,
    make_cost,
    pad_sequences,
    sentence_bleu_stats,
)
from searnn.costs.f1 import TagTable
from searnn.data.vocab import Vocab
from searnn.errors import ConfigError

WORDS = Vocab([f"w{i}" for i in range(8)])
TAGS = Vocab(["O", "B-NP", "I-NP", "B-VP", "I-VP", "B-PP", "I-PP"])


def rand_seqs(rng: random.Random, n: int, lo: int, hi: int, max_len: int, min_len: int = 0) -> list[list[int]]:
    return [[rng.randint(lo, hi) for _ in range(rng.randint(min_len, max_len))] for _ in range(n)]


def garbage_pad(seqs: list[list[int]], rng: random.Random, extra: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad with random ids (negative and out-of-vocabulary ones too) instead of PAD."""
    ids, lengths = pad_sequences(seqs)
    junk = torch.tensor([[rng.randint(-5, 500) for _ in range(ids.shape[1] + extra)] for _ in seqs], dtype=torch.long)
    junk = junk.reshape(len(seqs), ids.shape[1] + extra)
    mask = torch.arange(ids.shape[1] + extra) < lengths[:, None]
    junk[:, : ids.shape[1]] = torch.where(mask[:, : ids.shape[1]], ids, junk[:, : ids.shape[1]])
    return junk, lengths


def run_cost(name: str, vocab: Vocab, hyps, refs, rng: random.Random | None = None) -> list[float]:
    cost = make_cost(name, vocab)
    if rng is None:
        out = cost(*pad_sequences(hyps), *pad_sequences(refs))
    else:
        out = cost(*garbage_pad(hyps, rng), *garbage_pad(refs, rng))
    assert out.shape == (len(hyps),) and out.dtype == torch.float32 and not out.requires_grad
    return out.tolist()


# ----------------------------------------------------------------------------- registry


def test_registry_names_and_unknown():
    assert set(COSTS) == {"hamming", "edit", "bleu", "f1"}
    for name in ("hamming", "edit", "bleu"):
        assert make_cost(name, WORDS).name == name
    assert make_cost("f1", TAGS).name == "f1"
    with pytest.raises(ConfigError, match="unknown cost 'nope'.*bleu, edit, f1, hamming"):
        make_cost("nope", WORDS)


def test_f1_rejects_non_iob_vocabulary():
    with pytest.raises(ConfigError, match="IOB2"):
        make_cost("f1", Vocab(["O", "B-NP", "E-NP"]))


def test_shape_errors():
    cost = make_cost("hamming", WORDS)
    with pytest.raises(ValueError, match="row counts"):
        cost(
            torch.zeros(2, 3, dtype=torch.long),
            torch.zeros(3, dtype=torch.long),
            torch.zeros(2, 3, dtype=torch.long),
            torch.zeros(2, dtype=torch.long),
        )


# ----------------------------------------------------------------------------- hamming


def py_hamming(h: list[int], r: list[int]) -> float:
    errs = sum(1 for p in range(max(len(h), len(r))) if p >= len(h) or p >= len(r) or h[p] != r[p])
    return errs / max(len(r), 1)


def test_hamming_golden():
    hyps, refs = [[4, 5, 6], [4, 4], [], [5]], [[4, 7, 6], [4, 4, 5, 6], [], [5]]
    assert run_cost("hamming", WORDS, hyps, refs) == pytest.approx([1 / 3, 2 / 4, 0.0, 0.0])


def test_hamming_random_with_garbage():
    rng = random.Random(0)
    hyps, refs = rand_seqs(rng, 200, 4, 7, 9), rand_seqs(rng, 200, 4, 7, 9)
    expect = [py_hamming(h, r) for h, r in zip(hyps, refs, strict=True)]
    assert run_cost("hamming", WORDS, hyps, refs, rng) == pytest.approx(expect, abs=1e-6)


# ----------------------------------------------------------------------------- edit


def test_edit_golden():
    # kitten -> sitting: 3 edits over 7 reference tokens
    v = Vocab(list("kitensg"))
    hyps, refs = [v.encode(list("kitten")), []], [v.encode(list("sitting")), v.encode(list("ab"))]
    assert run_cost("edit", v, hyps, refs) == pytest.approx([3 / 7, 2 / 2])


def test_edit_random_vs_rapidfuzz():
    rng = random.Random(1)
    hyps, refs = rand_seqs(rng, 200, 4, 7, 10), rand_seqs(rng, 200, 4, 7, 10)
    expect = [Levenshtein.distance(h, r) / max(len(r), 1) for h, r in zip(hyps, refs, strict=True)]
    assert run_cost("edit", WORDS, hyps, refs, rng) == pytest.approx(expect, abs=1e-6)
    raw = levenshtein(*garbage_pad(hyps, rng), *garbage_pad(refs, rng))
    assert raw.tolist() == [Levenshtein.distance(h, r) for h, r in zip(hyps, refs, strict=True)]


def test_edit_distance_rows_are_prefix_distances():
    rng = random.Random(2)
    hyps, refs = rand_seqs(rng, 50, 4, 6, 7), rand_seqs(rng, 50, 4, 6, 7)
    rows = edit_distance_rows(*garbage_pad(hyps, rng, 0), *pad_sequences(refs))
    for n, (h, r) in enumerate(zip(hyps, refs, strict=True)):
        assert rows[n, : len(r) + 1].tolist() == [Levenshtein.distance(h, r[:j]) for j in range(len(r) + 1)]


# ----------------------------------------------------------------------------- bleu


def py_bleu(h: list[int], r: list[int], order: int = 4) -> float:
    """Smoothed sentence BLEU of docs/METHODS.md §4.3, straight from the definition."""
    m, t = [], []
    for n in range(1, order + 1):
        hc = Counter(tuple(h[i : i + n]) for i in range(len(h) - n + 1))
        rc = Counter(tuple(r[i : i + n]) for i in range(len(r) - n + 1))
        m.append(sum(min(c, rc[g]) for g, c in hc.items()))
        t.append(max(len(h) - n + 1, 0))
    if not h or m[0] == 0:
        return 0.0
    p = math.prod((mi + 1) / (ti + 1) for mi, ti in zip(m, t, strict=True)) ** (1 / order)
    bp = 1.0 if len(h) >= len(r) else math.exp(1 - len(r) / len(h))
    return bp * p


def test_bleu_golden():
    # hyp a b c vs ref a b: p = (3/4 * 2/3 * 1/2 * 1/1)^(1/4); hyp a a vs ref a a b: p = 1, BP = e^(1 - 3/2)
    hyps, refs = [[4, 5, 6], [4, 4], [], [7]], [[4, 5], [4, 4, 5], [4], [4]]
    expect = [1 - 0.25**0.25, 1 - math.exp(-0.5), 1.0, 1.0]
    assert run_cost("bleu", WORDS, hyps, refs) == pytest.approx(expect, abs=1e-6)


@pytest.mark.parametrize("order", [1, 2, 4])
def test_bleu_random_vs_bruteforce(order):
    rng = random.Random(3 + order)
    hyps, refs = rand_seqs(rng, 200, 4, 7, 12), rand_seqs(rng, 200, 4, 7, 12)
    cost = BleuCost(WORDS, max_order=order)
    got = cost(*garbage_pad(hyps, rng), *garbage_pad(refs, rng)).tolist()
    expect = [1 - py_bleu(h, r, order) for h, r in zip(hyps, refs, strict=True)]
    assert got == pytest.approx(expect, abs=1e-6)


def test_bleu_stats_are_clipped_counts():
    rng = random.Random(4)
    hyps, refs = rand_seqs(rng, 60, 4, 6, 10), rand_seqs(rng, 60, 4, 6, 10)
    stats = sentence_bleu_stats(*garbage_pad(hyps, rng), *garbage_pad(refs, rng), max_order=4)
    for k, (h, r) in enumerate(zip(hyps, refs, strict=True)):
        for n in range(1, 5):
            hc = Counter(tuple(h[i : i + n]) for i in range(len(h) - n + 1))
            rc = Counter(tuple(r[i : i + n]) for i in range(len(r) - n + 1))
            assert stats.matches[k, n - 1] == sum(min(c, rc[g]) for g, c in hc.items())
            assert stats.totals[k, n - 1] == max(len(h) - n + 1, 0)


def test_bleu_huge_ids_no_hash_limit():
    """Exact n-gram comparison: ids far beyond a 50k hashing base still match exactly."""
    big = 10**12
    hyps, refs = [[big, big + 1, 7, big + 2]], [[big, big + 1, 7, big + 2, 9]]
    got = make_cost("bleu", WORDS)(*pad_sequences(hyps), *pad_sequences(refs)).item()
    assert got == pytest.approx(1 - py_bleu(hyps[0], refs[0]), abs=1e-6)


def test_bleu_relation_to_sacrebleu_add_k():
    """sacreBLEU's add-k (k=1) smooths orders n > 1 only; ours also smooths unigrams, so on hypotheses of
    4+ tokens with a unigram match, ours = sacre * ((m1 + 1) h1 / ((h1 + 1) m1))^(1/4) exactly."""
    rng = random.Random(5)
    hyps, refs = rand_seqs(rng, 80, 4, 7, 12, min_len=4), rand_seqs(rng, 80, 4, 7, 12, min_len=1)
    ours = [1 - c for c in run_cost("bleu", WORDS, hyps, refs)]
    stats = sentence_bleu_stats(*pad_sequences(hyps), *pad_sequences(refs))
    checked = 0
    for k, (h, r) in enumerate(zip(hyps, refs, strict=True)):
        m1, h1 = int(stats.matches[k, 0]), int(stats.totals[k, 0])
        if m1 == 0:
            continue
        sacre = (
            sacrebleu.sentence_bleu(
                " ".join(f"w{i}" for i in h),
                [" ".join(f"w{i}" for i in r)],
                smooth_method="add-k",
                smooth_value=1,
                tokenize="none",
            ).score
            / 100
        )
        assert ours[k] == pytest.approx(sacre * ((m1 + 1) * h1 / ((h1 + 1) * m1)) ** 0.25, rel=1e-5)
        checked += 1
    assert checked > 40


# ----------------------------------------------------------------------------- f1


def seqeval_f1(h: list[str], r: list[str]) -> float:
    """Sentence chunk F1 from seqeval's (conlleval-like) chunk extraction; 1 for empty vs empty."""
    hc, rc = set(get_entities(h)), set(get_entities(r))
    if not hc and not rc:
        return 1.0
    return 2 * len(hc & rc) / (len(hc) + len(rc))


def rand_tags(rng: random.Random, n: int, max_len: int) -> list[list[str]]:
    return [[rng.choice(TAGS.itos[4:]) for _ in range(rng.randint(0, max_len))] for _ in range(n)]


def test_f1_golden():
    enc = TAGS.encode
    hyps = [enc("B-NP I-NP O B-VP".split()), enc("I-NP I-NP O".split()), [], enc("O O".split()), enc(["B-NP"])]
    refs = [enc("B-NP I-NP O B-VP".split()), enc("B-NP I-NP B-NP".split()), [], enc("B-NP O".split()), []]
    # row 1: NP(0,1) correct of 1 predicted, 2 gold -> F1 = 2/3; row 2: empty vs empty -> perfect
    assert run_cost("f1", TAGS, hyps, refs) == pytest.approx([0.0, 1 / 3, 0.0, 1.0, 1.0])


def test_f1_random_vs_seqeval():
    rng = random.Random(6)
    # Mostly the same length (fixed-length tasks), some different.
    refs = rand_tags(rng, 300, 9)
    hyps = [
        [t if rng.random() < 0.7 else rng.choice(TAGS.itos[4:]) for t in r] if rng.random() < 0.8 else h
        for r, h in zip(refs, rand_tags(rng, 300, 9), strict=True)
    ]
    expect = [1 - seqeval_f1(h, r) for h, r in zip(hyps, refs, strict=True)]
    got = run_cost("f1", TAGS, [TAGS.encode(h) for h in hyps], [TAGS.encode(r) for r in refs], rng)
    assert got == pytest.approx(expect, abs=1e-6)


def test_f1_specials_are_outside():
    table = TagTable(TAGS)
    assert table.type_id[:4].tolist() == [0, 0, 0, 0]
    assert table.extend[TAGS.stoi["B-NP"]] == TAGS.stoi["I-NP"]
    assert table.extend[TAGS.stoi["I-VP"]] == TAGS.stoi["I-VP"]
    assert table.extend[3] == TAGS.stoi["O"]


# ----------------------------------------------------------------------------- properties


@pytest.mark.parametrize("name", ["hamming", "edit", "bleu", "f1"])
def test_batch_equals_singletons_and_identity_is_zero(name):
    rng = random.Random(7)
    vocab = TAGS if name == "f1" else WORDS
    hyps = rand_seqs(rng, 12, 4, len(vocab) - 1, 8, min_len=1)
    refs = rand_seqs(rng, 12, 4, len(vocab) - 1, 8, min_len=1)
    batch = run_cost(name, vocab, hyps, refs)
    singles = [run_cost(name, vocab, [h], [r])[0] for h, r in zip(hyps, refs, strict=True)]
    assert batch == pytest.approx(singles, abs=1e-6)
    assert run_cost(name, vocab, refs, refs) == pytest.approx([0.0] * len(refs), abs=1e-6)


@pytest.mark.parametrize("name", ["hamming", "edit", "bleu", "f1"])
def test_empty_batch_and_zero_width(name):
    vocab = TAGS if name == "f1" else WORDS
    cost = make_cost(name, vocab)
    empty = torch.zeros(0, 0, dtype=torch.long)
    assert cost(empty, torch.zeros(0, dtype=torch.long), empty, torch.zeros(0, dtype=torch.long)).shape == (0,)
    seq, seq_len = cost.complete(empty, torch.zeros(0, dtype=torch.long), empty, torch.zeros(0, dtype=torch.long), 5)
    assert seq.shape[0] == 0 and seq_len.shape == (0,)
    one = torch.zeros(1, 0, dtype=torch.long)
    out = cost(one, torch.zeros(1, dtype=torch.long), torch.tensor([[4, 5]]), torch.tensor([2]))
    assert out.tolist() == [1.0]
