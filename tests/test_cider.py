"""CIDEr-D reward (searnn.smoothing.rewards.CiderD) against references.

1. A direct Python transcription of the CIDEr-D formula of Vedantam, Zitnick and Parikh (CVPR 2015,
   "CIDEr: Consensus-based Image Description Evaluation", sec. 3 and the CIDEr-D variant used by the
   MS-COCO server): n = 1..4, tf-idf vectors ``g_n = count * log(D / max(1, df))``, the candidate's
   tf-idf clipped by the reference's, cosine, a gaussian length penalty with sigma = 6, the mean over
   n and references, times 10. Always runs.
2. pycocoevalcap's ``CiderScorer`` (the coco-caption implementation), when installed.
"""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest
import torch

from searnn.smoothing.rewards import CiderD, pad_reference_sets, pad_sequences

VOCAB = 12


def _ngrams(sent: list[int], n: int) -> Counter:
    return Counter(tuple(sent[i : i + n]) for i in range(len(sent) - n + 1))


def reference_cider_d(hyp: list[int], refs: list[list[int]], documents: list[list[list[int]]]) -> float:
    """The CIDEr-D formula written out with dictionaries (no shared code with searnn)."""
    num_docs = len(documents)
    df: Counter = Counter()
    for doc in documents:
        seen = set()
        for ref in doc:
            for n in range(1, 5):
                seen.update(_ngrams(ref, n))
        df.update(seen)

    def vec(sent: list[int], n: int) -> dict:
        return {g: c * (math.log(num_docs) - math.log(max(1.0, df[g]))) for g, c in _ngrams(sent, n).items()}

    total = 0.0
    for ref in refs:
        penalty = math.exp(-((len(hyp) - len(ref)) ** 2) / (2 * 6.0**2))
        per_n = []
        for n in range(1, 5):
            gh, gr = vec(hyp, n), vec(ref, n)
            dot = sum(min(v, gr.get(g, 0.0)) * gr.get(g, 0.0) for g, v in gh.items())
            nh = math.sqrt(sum(v * v for v in gh.values()))
            nr = math.sqrt(sum(v * v for v in gr.values()))
            per_n.append(dot / (nh * nr) if nh > 0 and nr > 0 else 0.0)
        total += penalty * sum(per_n) / 4
    return 10.0 * total / len(refs)


def _fixed_examples(seed: int = 3, items: int = 24) -> tuple[list[list[int]], list[list[list[int]]]]:
    rng = random.Random(seed)
    hyps, ref_sets = [], []
    for _ in range(items):
        refs = [[rng.randint(4, VOCAB - 1) for _ in range(rng.randint(1, 9))] for _ in range(rng.randint(1, 5))]
        base = list(rng.choice(refs))
        hyp = [t if rng.random() < 0.7 else rng.randint(4, VOCAB - 1) for t in base]
        if rng.random() < 0.3:
            hyp = hyp[: max(1, len(hyp) - 2)]
        hyps.append(hyp)
        ref_sets.append(refs)
    hyps[0] = list(ref_sets[0][0])  # an exact match
    return hyps, ref_sets


def _ours(hyps, ref_sets, documents) -> torch.Tensor:
    cider = CiderD(documents, VOCAB)
    h, hl = pad_sequences(hyps)
    r, rl = pad_reference_sets(ref_sets)
    return cider(h, hl, r, rl)


def test_cider_d_matches_formula():
    hyps, ref_sets = _fixed_examples()
    ours = _ours(hyps, ref_sets, ref_sets)
    expected = torch.tensor([reference_cider_d(h, r, ref_sets) for h, r in zip(hyps, ref_sets, strict=True)])
    assert torch.allclose(ours, expected.float(), rtol=1e-5, atol=1e-5)
    assert ours.max() > 1.0 and ours.min() >= 0.0


def test_cider_d_training_document_frequencies():
    """DF from a separate "training" corpus: n-grams unseen there get the maximal idf log(D)."""
    hyps, ref_sets = _fixed_examples(seed=5)
    train_docs = _fixed_examples(seed=11, items=40)[1]
    ours = _ours(hyps, ref_sets, train_docs)
    expected = torch.tensor([reference_cider_d(h, r, train_docs) for h, r in zip(hyps, ref_sets, strict=True)])
    assert torch.allclose(ours, expected.float(), rtol=1e-5, atol=1e-5)


def test_cider_d_matches_pycocoevalcap():
    scorer_mod = pytest.importorskip("pycocoevalcap.cider.cider_scorer")
    hyps, ref_sets = _fixed_examples(seed=7)
    scorer = scorer_mod.CiderScorer(n=4, sigma=6.0)
    for h, refs in zip(hyps, ref_sets, strict=True):
        scorer += (" ".join(f"w{t}" for t in h), [" ".join(f"w{t}" for t in r) for r in refs])
    _, theirs = scorer.compute_score()
    ours = _ours(hyps, ref_sets, ref_sets)  # pycocoevalcap takes df from the evaluated references
    assert torch.allclose(ours.double(), torch.as_tensor(theirs), rtol=1e-5, atol=1e-5)


def test_cider_d_large_vocabulary_hashing():
    """Vocabularies too large for exact int64 codes use hashed codes; scores are unchanged."""
    hyps, ref_sets = _fixed_examples(seed=9)
    offset = 70_000  # ids > 55k: (V + 1)^4 overflows int64
    shift = [[t + offset for t in h] for h in hyps]
    shift_refs = [[[t + offset for t in r] for r in refs] for refs in ref_sets]
    small = _ours(hyps, ref_sets, ref_sets)
    cider = CiderD(shift_refs, VOCAB + offset)
    h, hl = pad_sequences(shift)
    r, rl = pad_reference_sets(shift_refs)
    assert torch.allclose(cider(h, hl, r, rl), small, rtol=1e-5, atol=1e-5)
