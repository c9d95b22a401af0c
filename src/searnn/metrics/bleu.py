"""Corpus BLEU (translation): sacreBLEU on the already tokenised target text.

Each id sequence is decoded with the target vocabulary and joined with spaces, then scored by
sacreBLEU with ``tokenize='none'`` (the text is already tokenised) and ``force=True``. An unknown token in
a reference is rendered as ``<unk:ref>`` so that it never matches a hypothesis ``<unk>``: the real word
behind it is out of the vocabulary, so no hypothesis could produce it (the reference code's rule).
"""

from __future__ import annotations

import math

from sacrebleu.metrics import BLEU

from searnn.costs.bleu import BleuStats
from searnn.data.vocab import UNK, Vocab
from searnn.metrics.base import Examples, MetricResult

REF_UNK = "<unk:ref>"


def _detok(ids: list[int], vocab: Vocab, unk: str = UNK) -> str:
    """Ids -> space-joined tokens (stops at EOS, drops PAD/BOS), the unknown token written ``unk``."""
    return " ".join(unk if tok == UNK else tok for tok in vocab.decode(ids))


def _reference_streams(refs: list[list[list[int]]], vocab: Vocab) -> list[list[str | None]]:
    """Per-example reference lists -> sacreBLEU's reference streams (None where an example has fewer)."""
    width = max((len(r) for r in refs), default=1)
    streams: list[list[str | None]] = [[] for _ in range(width)]
    for rs in refs:
        if not rs:
            raise ValueError("an example has no reference")
        for k in range(width):
            streams[k].append(_detok(rs[k], vocab, REF_UNK) if k < len(rs) else None)
    return streams


def bleu(hyps: list[list[int]], refs: list[list[list[int]]], vocab: Vocab, examples: Examples = None) -> MetricResult:
    """Corpus BLEU-4 x 100 by sacreBLEU (default exp smoothing, closest reference length)."""
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} reference lists")
    scorer = BLEU(tokenize="none", force=True)
    out = scorer.corpus_score([_detok(h, vocab) for h in hyps], _reference_streams(refs, vocab))
    details = {
        "precisions": list(out.precisions),
        "bp": out.bp,
        "ratio": out.sys_len / out.ref_len if out.ref_len else 0.0,
        "sys_len": out.sys_len,
        "ref_len": out.ref_len,
        "counts": list(out.counts),
        "totals": list(out.totals),
        "unk_matches": False,
    }
    return MetricResult(float(out.score), details, str(scorer.get_signature()))


def corpus_bleu_from_stats(stats: BleuStats) -> float:
    """Unsmoothed corpus BLEU x 100 from summed sentence statistics (one reference per sentence):
    ``BP * exp(mean_n log(sum m_n / sum h_n))``, 0 if some order has no match. Lets a caller accumulate
    :func:`searnn.costs.bleu.sentence_bleu_stats` on the device (or across ranks) and score at the end;
    equals sacreBLEU's ``smooth_method='none'`` score on the same single references."""
    m = stats.matches.sum(0).tolist()
    h = stats.totals.sum(0).tolist()
    c, r = int(stats.hyp_len.sum()), int(stats.ref_len.sum())
    if c == 0 or min(m) == 0:
        return 0.0
    log_p = sum(math.log(mi / hi) for mi, hi in zip(m, h, strict=True)) / len(m)
    bp = 1.0 if c >= r else math.exp(1.0 - r / c)
    return 100.0 * bp * math.exp(log_p)
