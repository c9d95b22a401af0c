"""Corpus-level metrics, registered by name: ``METRICS[name](hyps, refs, vocab) -> MetricResult``.

See :mod:`searnn.metrics.base` for the arguments. ``LOWER_IS_BETTER[name]`` says which way is better.
"""

from __future__ import annotations

from searnn.metrics.base import Metric, MetricResult
from searnn.metrics.bleu import bleu, corpus_bleu_from_stats
from searnn.metrics.cider import cider
from searnn.metrics.error_rate import cer, edit
from searnn.metrics.f1 import f1

METRICS: dict[str, Metric] = {"cer": cer, "edit": edit, "bleu": bleu, "f1": f1, "cider": cider}
"""Registered corpus metrics, name -> function."""

LOWER_IS_BETTER: dict[str, bool] = {"cer": True, "edit": True, "bleu": False, "f1": False, "cider": False}
"""Direction of each metric in :data:`METRICS`."""

__all__ = ["LOWER_IS_BETTER", "METRICS", "Metric", "MetricResult", "corpus_bleu_from_stats"]
