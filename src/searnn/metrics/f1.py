"""Corpus chunk F1 (chunking): conlleval's precision, recall and F1 over all chunks of the corpus,
counted with the f1 cost's per-sentence statistics (:func:`searnn.costs.f1.chunk_match`)."""

from __future__ import annotations

import torch

from searnn.costs.f1 import TagTable, chunk_match
from searnn.data.vocab import Vocab
from searnn.metrics.base import Examples, MetricResult, first_references, padded_chunks


def _prf(correct: int, n_hyp: int, n_ref: int) -> dict[str, float]:
    """Precision, recall, F1 (x 100) from counts; 0 where undefined."""
    p = 100.0 * correct / n_hyp if n_hyp else 0.0
    r = 100.0 * correct / n_ref if n_ref else 0.0
    f = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return {"precision": p, "recall": r, "f1": f, "correct": correct, "hyp_chunks": n_hyp, "ref_chunks": n_ref}


def f1(hyps: list[list[int]], refs: list[list[list[int]]], vocab: Vocab, examples: Examples = None) -> MetricResult:
    """conlleval chunk F1 x 100 over the corpus (first reference of each example); details give precision,
    recall and counts overall and per chunk type."""
    table = TagTable(vocab)
    ntypes = len(table.types)
    correct, n_hyp, n_ref = (torch.zeros(ntypes, dtype=torch.long) for _ in range(3))
    for hyp, hyp_len, ref, ref_len in padded_chunks(hyps, first_references(hyps, refs)):
        m = chunk_match(hyp, hyp_len, ref, ref_len, table)
        correct += torch.bincount(m.hyp_type[m.correct], minlength=ntypes)
        n_hyp += torch.bincount(m.hyp_type[m.hyp_start], minlength=ntypes)
        n_ref += torch.bincount(m.ref_type[m.ref_start], minlength=ntypes)
    overall = _prf(int(correct.sum()), int(n_hyp.sum()), int(n_ref.sum()))
    per_type = {
        name: _prf(int(correct[k]), int(n_hyp[k]), int(n_ref[k]))
        for k, name in enumerate(table.types)
        if k > 0 and (n_hyp[k] > 0 or n_ref[k] > 0)
    }
    details = {**overall, "per_type": per_type, "sentences": len(hyps)}
    return MetricResult(overall["f1"], details, "conlleval-style chunk F1")
