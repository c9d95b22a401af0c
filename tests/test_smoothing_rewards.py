"""Sequence rewards of searnn.smoothing.rewards: BLEU vs sacrebleu, Hamming and edit vs brute force."""

from __future__ import annotations

import random

import pytest
import sacrebleu
import torch

from searnn.smoothing import ngrams
from searnn.smoothing.rewards import (
    edit_reward,
    hamming_reward,
    make_reward,
    pad_reference_sets,
    pad_sequences,
    sentence_bleu,
)

VOCAB = 10


def _words(seq: list[int]) -> str:
    return " ".join(f"w{t}" for t in seq)


def _examples(seed: int, items: int = 40, max_refs: int = 3):
    rng = random.Random(seed)
    hyps, ref_sets = [], []
    for _ in range(items):
        refs = [[rng.randint(4, VOCAB - 1) for _ in range(rng.randint(1, 12))] for _ in range(rng.randint(1, max_refs))]
        base = list(rng.choice(refs))
        hyp = [t if rng.random() < 0.75 else rng.randint(4, VOCAB - 1) for t in base]
        cut = rng.random()
        if cut < 0.2:
            hyp = hyp[: rng.randint(0, len(hyp))]
        elif cut < 0.3:
            hyp = hyp + [rng.randint(4, VOCAB - 1) for _ in range(3)]
        hyps.append(hyp)
        ref_sets.append(refs)
    hyps[0] = list(ref_sets[0][0])
    hyps[1] = []
    hyps[2] = [VOCAB - 1] * 2  # short hypothesis: effective order 2
    return hyps, ref_sets


@pytest.mark.parametrize("max_refs", [1, 4])
def test_sentence_bleu_matches_sacrebleu(max_refs):
    hyps, ref_sets = _examples(seed=max_refs, max_refs=max_refs)
    h, hl = pad_sequences(hyps)
    r, rl = pad_reference_sets(ref_sets)
    ours = sentence_bleu(h, hl, r, rl, VOCAB)
    theirs = torch.tensor(
        [
            sacrebleu.sentence_bleu(_words(hy), [_words(x) for x in refs], tokenize="none").score / 100
            for hy, refs in zip(hyps, ref_sets, strict=True)
        ]
    )
    assert torch.allclose(ours, theirs.float(), atol=1e-5), (ours - theirs).abs().max()
    assert ours[0] == pytest.approx(1.0)


def test_sentence_bleu_is_on_tokens_not_characters():
    """Multi-character tokens: one wrong token costs a token n-gram, not a few characters."""
    hyp, hl = pad_sequences([[4, 5, 6, 7, 8]])
    ref, rl = pad_reference_sets([[[4, 5, 6, 7, 9]]])
    ours = float(sentence_bleu(hyp, hl, ref, rl, VOCAB))
    theirs = sacrebleu.sentence_bleu("aa bb cc dd ee", ["aa bb cc dd ff"], tokenize="none").score / 100
    assert ours == pytest.approx(theirs, abs=1e-6)


def _levenshtein(a: list[int], b: list[int]) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def _hamming(a: list[int], b: list[int]) -> int:
    return sum(x != y for x, y in zip(a, b, strict=False)) + abs(len(a) - len(b))


def test_edit_and_hamming_rewards_brute_force():
    hyps, ref_sets = _examples(seed=11, max_refs=3)
    h, hl = pad_sequences(hyps)
    r, rl = pad_reference_sets(ref_sets)
    edit = edit_reward(h, hl, r, rl)
    ham = hamming_reward(h, hl, r, rl)
    for i, (hy, refs) in enumerate(zip(hyps, ref_sets, strict=True)):
        assert edit[i] == -min(_levenshtein(hy, x) for x in refs)
        assert ham[i] == -min(_hamming(hy, x) for x in refs)


def test_make_reward_names():
    assert make_reward("bleu", VOCAB) is not None
    with pytest.raises(ValueError):
        make_reward("cider", VOCAB)
    with pytest.raises(Exception, match="unknown reward"):
        make_reward("rouge", VOCAB)


def test_ngram_lookup_and_ranks():
    seq = torch.tensor([[4, 5, 4, 5, 4, 0]])
    codes = ngrams.ngram_codes(seq, 2, VOCAB)
    valid = ngrams.valid_mask(torch.tensor([5]), 2, codes.shape[1])
    assert valid.tolist() == [[True, True, True, True, False]]
    assert ngrams.occurrence_rank(codes, valid).tolist()[0][:4] == [0, 0, 1, 1]
    table = torch.unique(codes[valid])
    vals = torch.arange(table.numel()).float() + 1
    looked = ngrams.lookup(table, vals, codes[:, :2])
    expected = [float((table == codes[0, i]).nonzero()) + 1 for i in range(2)]
    assert looked.tolist() == [expected]
