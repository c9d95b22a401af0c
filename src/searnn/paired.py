"""Paired bootstrap resampling of corpus BLEU over test sentences, as ``sacrebleu --paired-bs`` does it.

Two systems decoded the same test set; is the difference of their corpus BLEU larger than what resampling the
test sentences gives by chance? The semantics are sacreBLEU's (``sacrebleu.significance._paired_bs_test``, the
Moses ``bootstrap-hypothesis-difference-significance.pl`` procedure), with its defaults:

* ``R = 1000`` resamples of the ``N`` sentences, with replacement, all drawn at once by
  ``numpy.random.default_rng(12345).choice(N, size=(R, N))`` (sacreBLEU's ``SACREBLEU_SEED`` default); the
  same index sets serve the baseline and the system (that is the pairing);
* each resample's corpus BLEU is computed from the summed per-sentence sufficient statistics
  (:func:`sentence_stats`: hypothesis length, closest reference length, clipped n-gram matches and n-gram
  counts for n = 1..4) with sacreBLEU's default ``exp`` smoothing (:func:`bleu_from_stats`);
* confidence: the mean ``mu`` of the ``R`` resampled scores and the half-width ``ci = (s[R - 1 - R//40] -
  s[R//40]) / 2`` of the sorted scores ``s`` (a 95% interval, printed as ``mu ± ci``), for either system;
* p-value: with ``d_r = |BLEU_sys(r) - BLEU_base(r)|`` and the observed ``d = |BLEU_sys - BLEU_base|`` on the
  whole test set, ``p = (#{r : d_r - mean(d) > d} + 1) / (R + 1)``.

Everything is vectorised over the resamples: the ``(R, N)`` matrix of how often each sentence is drawn times
the ``(N, 10)`` statistics gives every resample's statistics in one integer product. Scores are computed in
float64 (sacreBLEU computes the resampled n-gram precisions in float32 under NumPy 2), so they agree with
sacreBLEU's to float rounding, and the p-value and interval equal its output on the same index sets.

``searnn report --paired-bs ROW`` (:func:`paired_table`) applies it per seed to grid rows, reading each run's
saved test decoding (``test_hyps.txt`` / ``test_beam_hyps.txt``, written by ``searnn train``).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

MAX_ORDER = 4
RESAMPLES = 1000
SEED = 12345
"""sacreBLEU's defaults for ``--paired-bs``: ``--paired-bs-n 1000`` and ``SACREBLEU_SEED=12345``."""

HYPS_FILES = {"test": "test_hyps.txt", "test_beam": "test_beam_hyps.txt"}
"""The per-sentence test decodings a run dir holds, by results split (one line per test example)."""


# ----------------------------------------------------------------------------------------- statistics


def _ngram_counts(tokens: Sequence[str], max_order: int) -> Counter[tuple[str, ...]]:
    """Counts of every n-gram of ``tokens``, n = 1..max_order."""
    counts: Counter[tuple[str, ...]] = Counter()
    for n in range(1, max_order + 1):
        counts.update(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
    return counts


def _closest_length(hyp_len: int, ref_lens: Sequence[int]) -> int:
    """The reference length closest to ``hyp_len``, the shorter one on a tie (sacreBLEU's rule)."""
    return min(ref_lens, key=lambda r: (abs(hyp_len - r), r))


def sentence_stats(hyps: Sequence[Sequence[str]], refs: Sequence[Sequence[Sequence[str]]],
                   max_order: int = MAX_ORDER) -> np.ndarray:
    """Per-sentence BLEU sufficient statistics, sacreBLEU's layout.

    ``hyps[i]``: the tokens of hypothesis i; ``refs[i]``: its references (token lists, at least one). Returns
    ``(N, 2 + 2 K)`` int64 rows ``[c, r, m_1..m_K, h_1..h_K]``: hypothesis length, closest reference length,
    matches of each order clipped by the largest count of that n-gram in any one reference, and hypothesis
    n-gram counts."""
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} reference lists")
    rows = np.zeros((len(hyps), 2 + 2 * max_order), dtype=np.int64)
    for i, (hyp, rs) in enumerate(zip(hyps, refs, strict=True)):
        if not rs:
            raise ValueError(f"sentence {i + 1} has no reference")
        ref_counts: Counter[tuple[str, ...]] = Counter()
        for ref in rs:
            ref_counts |= _ngram_counts(ref, max_order)  # union = the largest count per n-gram
        rows[i, 0] = len(hyp)
        rows[i, 1] = _closest_length(len(hyp), [len(r) for r in rs])
        for gram, count in _ngram_counts(hyp, max_order).items():
            n = len(gram)
            rows[i, 1 + n] += min(count, ref_counts.get(gram, 0))
            rows[i, 1 + max_order + n] += count
    return rows


def bleu_from_stats(stats: np.ndarray, max_order: int = MAX_ORDER) -> np.ndarray:
    """Corpus BLEU x 100 of summed statistics, sacreBLEU's ``compute_bleu`` with ``exp`` smoothing.

    ``stats (..., 2 + 2 K)`` -> ``(...)`` float64. ``BP = exp(1 - r / c)`` when ``c < r`` (0 when ``c = 0``);
    precision ``p_n = 100 m_n / h_n``, or ``100 / (2^k h_n)`` for the k-th order without a match; BLEU
    ``= BP exp(mean_n log p_n)``; 0 when no order has a match or some order has no n-gram."""
    s = np.asarray(stats, dtype=np.float64)
    c, r = s[..., 0], s[..., 1]
    m, h = s[..., 2 : 2 + max_order], s[..., 2 + max_order : 2 + 2 * max_order]
    with np.errstate(divide="ignore", invalid="ignore"):
        bp = np.where(c < r, np.where(c > 0, np.exp(1.0 - r / np.where(c > 0, c, 1.0)), 0.0), 1.0)
        zero = m == 0
        halvings = np.cumsum(zero, axis=-1)
        safe_h = np.where(h > 0, h, 1.0)
        precision = np.where(zero, 100.0 / (2.0 ** halvings * safe_h), 100.0 * m / safe_h)
        logs = np.log(precision)
    total = logs[..., 0]
    for n in range(1, max_order):  # left to right, as Python's sum() in sacreBLEU
        total = total + logs[..., n]
    score = bp * np.exp(total / max_order)
    dead = zero.all(axis=-1) | (h == 0).any(axis=-1)
    return np.where(dead, 0.0, score)


def resample_indices(n: int, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """``(resamples, n)`` sentence indices drawn with replacement, sacreBLEU's single draw."""
    return np.random.default_rng(seed).choice(n, size=(resamples, n), replace=True)


def resampled_stats(stats: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Summed statistics of every resample: ``(N, D)`` int and ``(R, N)`` indices -> ``(R, D)`` int64, as one
    product of the draw counts ``(R, N)`` with ``stats`` (no loop over resamples)."""
    r, n = indices.shape
    flat = (indices + np.arange(r)[:, None] * n).ravel()
    counts = np.bincount(flat, minlength=r * n).reshape(r, n)
    return counts @ np.asarray(stats, dtype=np.int64)


def estimate_ci(scores: np.ndarray) -> tuple[float, float]:
    """Mean and 95% half-width of resampled scores: ``(s[R - 1 - R//40] - s[R//40]) / 2`` of the sorted ``s``."""
    s = np.sort(scores)
    low = len(s) // 40
    return float(s.mean()), float(0.5 * (s[len(s) - low - 1] - s[low]))


# ----------------------------------------------------------------------------------------- the test


@dataclass(frozen=True)
class PairedBootstrap:
    """One system against a baseline on the same sentences: corpus BLEU of each (``base``, ``system``), their
    difference ``system - base``, each one's resampled mean ± 95% half-width, and the p-value."""

    base: float
    system: float
    diff: float
    base_mean: float
    base_ci: float
    system_mean: float
    system_ci: float
    p: float
    resamples: int
    seed: int

    def to_json(self) -> dict[str, float | int]:
        return dict(self.__dict__)


def paired_bootstrap(base_stats: np.ndarray, system_stats: np.ndarray, resamples: int = RESAMPLES,
                     seed: int = SEED, indices: np.ndarray | None = None) -> PairedBootstrap:
    """Paired bootstrap test of ``system`` against ``base`` from their per-sentence statistics ``(N, D)``
    (module docstring). ``indices (R, N)``: the resamples to use (default: sacreBLEU's draw)."""
    if base_stats.shape != system_stats.shape:
        raise ValueError(f"the systems have statistics of shapes {base_stats.shape} and {system_stats.shape}")
    if indices is None:
        indices = resample_indices(len(base_stats), resamples, seed)
    base = float(bleu_from_stats(base_stats.sum(0)))
    system = float(bleu_from_stats(system_stats.sum(0)))
    base_scores = bleu_from_stats(resampled_stats(base_stats, indices))
    system_scores = bleu_from_stats(resampled_stats(system_stats, indices))
    sample_diffs = np.abs(system_scores - base_scores)
    centred = sample_diffs - sample_diffs.mean()
    p = (int(np.sum(centred > abs(system - base))) + 1) / (len(indices) + 1)
    base_mean, base_ci = estimate_ci(base_scores)
    system_mean, system_ci = estimate_ci(system_scores)
    return PairedBootstrap(base, system, system - base, base_mean, base_ci, system_mean, system_ci, p,
                           len(indices), seed)


# ----------------------------------------------------------------------------------------- run dirs


def hyps_path(run_dir: str | Path, split: str) -> Path:
    """Where a run dir keeps the decoding of ``split`` (``test`` or ``test_beam``)."""
    if split not in HYPS_FILES:
        raise ValueError(f"no saved hypotheses for split {split!r}; valid: {', '.join(HYPS_FILES)}")
    return Path(run_dir) / HYPS_FILES[split]


def read_hyps(run_dir: str | Path, split: str, expected: int) -> list[list[str]]:
    """The tokens of each line of a run's saved decoding; a missing file or a wrong line count is a
    :class:`~searnn.errors.DataError` naming the file."""
    from searnn.errors import DataError

    path = hyps_path(run_dir, split)
    if not path.is_file():
        hint = (f"run `searnn evaluate {run_dir} --save-hyps {path}`" if split == "test"
                else "train it with --test-beam K")
        raise DataError(f"{path}: missing (the run saved no {split} decoding; {hint})")
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read ({e})") from None
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) != expected:
        raise DataError(f"{path}: {len(lines)} lines, but the run's test split has {expected} examples")
    return [line.split() for line in lines]


def _test_references(run_dir: Path, cache: dict[str, list[list[list[str]]]]) -> list[list[list[str]]]:
    """The test references of a run as sacreBLEU reads them (:mod:`searnn.metrics.bleu`), from the task its
    ``config.yaml`` describes; cached by task configuration."""
    from searnn.checkpoint import load_saved_config
    from searnn.data.registry import load_task
    from searnn.evaluate import references
    from searnn.metrics.bleu import _reference_streams

    cfg = load_saved_config(run_dir)
    key = json.dumps({"task": cfg.train.task, **cfg.to_dict()["task"]}, sort_keys=True, default=str)
    if key not in cache:
        task = load_task(cfg.train.task, cfg.task)
        streams = _reference_streams(references(task.test), task.tgt_vocab)
        cache[key] = [[ref.split() for ref in refs if ref is not None] for refs in zip(*streams, strict=True)]
    return cache[key]


def run_stats(run_dir: Path, split: str, cache: dict[str, Any]) -> np.ndarray:
    """Per-sentence statistics ``(N, 10)`` of a run's saved decoding of ``split``."""
    refs = _test_references(run_dir, cache)
    return sentence_stats(read_hyps(run_dir, split, len(refs)), refs)


def paired_table(groups: Sequence[Any], against: Sequence[str], split: str = "test") -> tuple[str, list[dict]]:
    """``searnn report --paired-bs ROW``: seed k of every row (of ROW's task, metric BLEU) against seed k of ROW,
    one paired bootstrap per seed present in both. ``groups``: :class:`searnn.report.Group`. Returns the markdown
    and the JSON records."""
    from searnn.errors import SearnnError

    by_label = {g.label: g for g in groups}
    cache: dict[str, Any] = {}
    stats: dict[Path, np.ndarray] = {}

    def of(run: Any) -> np.ndarray:
        if run.run_dir not in stats:
            stats[run.run_dir] = run_stats(run.run_dir, split, cache)
        return stats[run.run_dir]

    lines = ["| row | against | seed | row BLEU | against BLEU | difference | row μ ± 95% | against μ ± 95% | p |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    records = []
    for name in against:
        if name not in by_label:
            raise SearnnError(f"--paired-bs {name!r}: no such row; rows: {', '.join(by_label)}")
        ref = by_label[name]
        if ref.metric != "bleu":
            raise SearnnError(f"--paired-bs {name!r}: the paired bootstrap is for BLEU; this row's metric is "
                              f"{ref.metric}")
        base_runs = {r.seed: r for r in ref.runs}
        for g in groups:
            if g is ref or (g.task, g.metric) != (ref.task, ref.metric):
                continue
            for run in g.runs:
                base = base_runs.get(run.seed)
                if base is None:
                    continue
                base_stats, system_stats = of(base), of(run)
                if base_stats.shape != system_stats.shape:
                    raise SearnnError(f"--paired-bs {name!r}: {run.run_dir} has {len(system_stats)} test sentences but "
                                      f"{base.run_dir} has {len(base_stats)}; a paired test needs the same test set")
                res = paired_bootstrap(base_stats, system_stats)
                records.append({"row": g.label, "against": name, "seed": run.seed, "split": split,
                                **res.to_json()})
                lines.append(f"| {g.label} | {name} | {run.seed} | {res.system:.2f} | {res.base:.2f} | "
                             f"{res.diff:+.2f} | {res.system_mean:.2f} ± {res.system_ci:.2f} | "
                             f"{res.base_mean:.2f} ± {res.base_ci:.2f} | {_format_p(res.p)} |")
    return "\n".join(lines), records


def _format_p(p: float) -> str:
    return f"{p:.4f}" if p >= 1e-4 else f"{p:.1e}"


PAIRED_NOTE = (
    "paired bootstrap (sacreBLEU --paired-bs semantics): seed k of the row against seed k of the row it is tested "
    f"against, on the same test sentences; {RESAMPLES} resamples, seed {SEED}; μ ± 95%: mean and half-width of the "
    "resampled BLEU; p = (#{resampled |difference| - its mean > observed |difference|} + 1) / (resamples + 1)."
)
