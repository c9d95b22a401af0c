"""Task costs on token ids: batched tensors, no autograd, each with its reference policy (oracle).

See :mod:`searnn.costs.base` for the interface. ``make_cost(name, tgt_vocab)`` builds a registered cost.
"""

from __future__ import annotations

from searnn.costs.base import Cost, pad_sequences
from searnn.costs.bleu import BleuCost, BleuStats, best_suffix_bleu1, sentence_bleu_stats, smoothed_bleu
from searnn.costs.edit import EditCost, edit_distance_rows, levenshtein
from searnn.costs.f1 import ChunkF1Cost, chunk_f1, chunk_match
from searnn.costs.hamming import HammingCost, hamming_errors
from searnn.data.vocab import Vocab
from searnn.errors import unknown_name

COSTS: dict[str, type[Cost]] = {
    "hamming": HammingCost,
    "edit": EditCost,
    "bleu": BleuCost,
    "f1": ChunkF1Cost,
}
"""Registered costs, name -> class; every class is constructed as ``cls(tgt_vocab)``."""


def make_cost(name: str, tgt_vocab: Vocab | int) -> Cost:
    """The cost registered as ``name`` for this target vocabulary (``ConfigError`` if unknown). ``tgt_vocab``
    may be a vocabulary size V (placeholder tokens; ``f1`` needs the real tag vocabulary)."""
    if name not in COSTS:
        raise unknown_name("cost", name, list(COSTS))
    if not isinstance(tgt_vocab, Vocab):
        from searnn.api import as_vocab

        tgt_vocab = as_vocab(tgt_vocab)
    return COSTS[name](tgt_vocab)


__all__ = [
    "COSTS",
    "BleuCost",
    "BleuStats",
    "ChunkF1Cost",
    "Cost",
    "EditCost",
    "HammingCost",
    "best_suffix_bleu1",
    "chunk_f1",
    "chunk_match",
    "edit_distance_rows",
    "hamming_errors",
    "levenshtein",
    "make_cost",
    "pad_sequences",
    "sentence_bleu_stats",
    "smoothed_bleu",
]
