"""Error rates normalised by the reference length: ``cer`` (Hamming, OCR) and ``edit`` (Levenshtein,
spelling), both ``100 * total errors / total reference tokens`` (lower is better)."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from searnn.costs.edit import levenshtein
from searnn.costs.hamming import hamming_errors
from searnn.data.vocab import Vocab
from searnn.metrics.base import Examples, MetricResult, first_references, padded_chunks

Counter = Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]


def _error_rate(hyps: list[list[int]], refs: list[list[list[int]]], errors: Counter, signature: str) -> MetricResult:
    """Corpus error rate from a per-row error counter ``(hyp, hyp_len, ref, ref_len) -> (N,)``."""
    first = first_references(hyps, refs)
    total_err, total_ref = 0, 0
    for hyp, hyp_len, ref, ref_len in padded_chunks(hyps, first):
        total_err += int(errors(hyp, hyp_len, ref, ref_len).sum())
        total_ref += int(ref_len.sum())
    value = 100.0 * total_err / max(total_ref, 1)
    details = {"errors": total_err, "ref_tokens": total_ref, "sentences": len(hyps)}
    return MetricResult(value, details, signature)


def cer(hyps: list[list[int]], refs: list[list[list[int]]], vocab: Vocab, examples: Examples = None) -> MetricResult:
    """Token (character) error rate: Hamming errors by position, a position present in only one of
    hypothesis/reference counting as an error, / reference tokens * 100."""
    return _error_rate(hyps, refs, hamming_errors, "hamming errors / ref tokens x 100 (first ref)")


def edit(hyps: list[list[int]], refs: list[list[list[int]]], vocab: Vocab, examples: Examples = None) -> MetricResult:
    """Levenshtein distance / reference tokens * 100, summed over the corpus."""
    return _error_rate(hyps, refs, levenshtein, "levenshtein / ref tokens x 100 (first ref)")
