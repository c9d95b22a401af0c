"""Corpus CIDEr-D (captions): the coco-caption definition, on token ids.

``cider(hyps, refs, vocab)`` scores each hypothesis against its references with
:class:`searnn.smoothing.rewards.CiderD` (Vedantam, Zitnick and Parikh, CVPR 2015: tf-idf n-gram vectors,
n = 1..4, the candidate's counts clipped by the reference's, cosine, gaussian length penalty with
sigma = 6, mean over references and orders, x 10), with the document frequencies taken from the references
of the **evaluated** set (one document per example), as the coco-caption evaluation server does, and
averages over the examples. Reported x 100 (``CIDEr-D 105.2`` = coco-caption's 1.052); higher is better.

An unknown word in a reference is given an id of its own that no hypothesis can produce, so that a predicted
UNK never matches it (the rule of :mod:`searnn.metrics.bleu`).
"""

from __future__ import annotations

import torch

from searnn.data.vocab import UNK_ID, Vocab
from searnn.metrics.base import Examples, MetricResult

SIGNATURE = "CIDEr-D x100 (coco-caption: n=1..4, sigma=6, clipped tf-idf, idf over the evaluated references)"


def cider(hyps: list[list[int]], refs: list[list[list[int]]], vocab: Vocab, examples: Examples = None,
          chunk: int = 256) -> MetricResult:
    """Corpus CIDEr-D x 100: the mean over examples of CIDEr-D(hypothesis, its references)."""
    from searnn.smoothing.rewards import CiderD, pad_reference_sets, pad_sequences

    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} reference lists")
    for i, r in enumerate(refs):
        if len(r) == 0:
            raise ValueError(f"example {i} has no reference")
    if not hyps:
        return MetricResult(0.0, {"sentences": 0}, SIGNATURE)
    ref_unk = len(vocab)  # an id no hypothesis holds
    documents = [[[ref_unk if t == UNK_ID else int(t) for t in r] for r in rs] for rs in refs]
    scorer = CiderD(documents, len(vocab) + 1)
    scores = []
    with torch.no_grad():
        for lo in range(0, len(hyps), chunk):
            hyp, hyp_len = pad_sequences([[int(t) for t in h] for h in hyps[lo : lo + chunk]])
            ref, ref_len = pad_reference_sets(documents[lo : lo + chunk])
            scores.append(scorer(hyp, hyp_len, ref, ref_len))
    per_example = torch.cat(scores)
    value = 100.0 * float(per_example.mean())
    details = {"sentences": len(hyps), "references": sum(len(r) for r in refs),
               "min": 100.0 * float(per_example.min()), "max": 100.0 * float(per_example.max())}
    return MetricResult(value, details, SIGNATURE)
