"""Corpus metrics: ``metric(hyps, refs, vocab) -> MetricResult``.

``hyps``: one list of target ids per example (no BOS/EOS); ``refs``: for each example a list of one or
more references (translation/captions may have several; the other tasks pass one, and their metrics use
the first). A fourth argument, the examples themselves, is accepted (``evaluate.score`` passes it) and
unused by the metrics here. ``cer``, ``edit`` and ``f1`` sum the costs' per-sentence statistics over the
corpus; ``bleu`` is sacreBLEU's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from torch import Tensor

from searnn.costs.base import pad_sequences
from searnn.data.batch import Example


@dataclass
class MetricResult:
    """``value``: the corpus score; ``details``: its components; ``signature``: how it was computed."""

    value: float
    details: dict = field(default_factory=dict)
    signature: str = ""


Examples = Sequence[Example] | None
"""The optional fourth metric argument (unused by the built-in metrics)."""

Metric = Callable[..., MetricResult]
"""``(hyps, refs, vocab[, examples]) -> MetricResult``."""


def first_references(hyps: Sequence[Sequence[int]], refs: Sequence[Sequence[Sequence[int]]]) -> list[list[int]]:
    """The first reference of each example, checking that every example has one."""
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} reference lists")
    for i, r in enumerate(refs):
        if len(r) == 0:
            raise ValueError(f"example {i} has no reference")
    return [list(r[0]) for r in refs]


def padded_chunks(
    hyps: Sequence[Sequence[int]], refs: Sequence[Sequence[int]], size: int = 512
) -> Iterator[tuple[Tensor, Tensor, Tensor, Tensor]]:
    """``(hyp (n, T), hyp_len (n,), ref (n, T'), ref_len (n,))`` CPU tensors for successive slices of
    ``size`` examples (bounded memory for the pairwise statistics)."""
    for lo in range(0, len(hyps), size):
        yield (*pad_sequences(hyps[lo : lo + size]), *pad_sequences(refs[lo : lo + size]))
