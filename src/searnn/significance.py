"""Seed statistics and two-sample tests for result tables (``searnn report --stats / --test-against``).

Everything works on plain lists of per-seed figures (one test metric per finished run):

* :func:`summary`: n, mean, sample standard deviation, median, min and max;
* :func:`welch`: Welch's unequal-variance t-test of the difference of two means, with the
  Welch-Satterthwaite degrees of freedom and a two-sided p-value from Student's t distribution
  (:func:`student_t_sf`, computed through the regularised incomplete beta function, no SciPy needed);
* :func:`bootstrap`: a two-sample bootstrap of the difference of means: a percentile 95% interval, and a
  two-sided p-value from resampling both groups after shifting them to a common mean (the null hypothesis
  of equal means), with a fixed generator seed so that a report is reproducible.

With 3-8 seeds per row the two tests answer slightly different questions: Welch assumes roughly normal
per-seed figures, the bootstrap assumes nothing but is coarse at such sizes (its p-value cannot go below
about ``1 / resamples`` and its interval is narrow when n is small). A table should print both.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Summary:
    """Per-seed figures of one row: ``std`` is the sample standard deviation (``None`` below 2 values)."""

    n: int
    mean: float
    std: float | None
    median: float
    low: float
    high: float


def summary(values: Sequence[float]) -> Summary:
    """:class:`Summary` of ``values`` (at least one)."""
    if not values:
        raise ValueError("summary of no values")
    xs = [float(v) for v in values]
    std = statistics.stdev(xs) if len(xs) > 1 else None
    return Summary(len(xs), statistics.fmean(xs), std, statistics.median(xs), min(xs), max(xs))


# ----------------------------------------------------------------------------- Student's t distribution


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz), valid for x < (a+1)/(a+b+2)."""
    tiny, eps = 1e-300, 1e-15
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            break
    return h


def regularized_beta(a: float, b: float, x: float) -> float:
    """``I_x(a, b)``, the regularised incomplete beta function, for ``a, b > 0`` and ``0 <= x <= 1``."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_continued_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_continued_fraction(b, a, 1.0 - x) / b


def student_t_sf(t: float, df: float) -> float:
    """``P(T > t)`` for Student's t with ``df > 0`` degrees of freedom (any real ``df``, as Welch needs)."""
    if math.isinf(t):
        return 0.0 if t > 0 else 1.0
    tail = 0.5 * regularized_beta(df / 2.0, 0.5, df / (df + t * t))
    return tail if t >= 0 else 1.0 - tail


# ------------------------------------------------------------------------------------------------- tests


@dataclass(frozen=True)
class Welch:
    """Welch's t-test of ``mean(a) - mean(b)``: statistic ``t``, degrees of freedom ``df``, two-sided ``p``."""

    diff: float
    t: float
    df: float
    p: float


def welch(a: Sequence[float], b: Sequence[float]) -> Welch | None:
    """Welch's t-test of the two samples; ``None`` when either has fewer than 2 values. Two samples with no
    spread at all give ``t = ±inf, p = 0`` when their means differ and ``t = 0, p = 1`` when they do not."""
    if len(a) < 2 or len(b) < 2:
        return None
    sa, sb = summary(a), summary(b)
    assert sa.std is not None and sb.std is not None
    va, vb = sa.std ** 2 / sa.n, sb.std ** 2 / sb.n
    diff = sa.mean - sb.mean
    if va + vb == 0.0:
        return Welch(diff, 0.0 if diff == 0 else math.copysign(math.inf, diff), float(sa.n + sb.n - 2),
                     1.0 if diff == 0 else 0.0)
    t = diff / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (sa.n - 1) + vb ** 2 / (sb.n - 1))
    return Welch(diff, t, df, min(1.0, 2.0 * student_t_sf(abs(t), df)))


@dataclass(frozen=True)
class Bootstrap:
    """Two-sample bootstrap of ``mean(a) - mean(b)``: percentile interval ``(low, high)`` at ``level`` and the
    two-sided p-value of equal means, from ``resamples`` draws."""

    diff: float
    low: float
    high: float
    p: float
    level: float
    resamples: int


def bootstrap(a: Sequence[float], b: Sequence[float], resamples: int = 10000, level: float = 0.95,
              seed: int = 0) -> Bootstrap | None:
    """Bootstrap the difference of means (``None`` when either sample has fewer than 2 values: one value has
    no spread to resample, so the bootstrap would treat that row's mean as known exactly and report a
    confidence it does not have).

    The interval resamples each group with replacement. The p-value resamples the groups shifted to the
    pooled mean (so that the null hypothesis holds) and counts the draws whose absolute difference is at least
    the observed one, ``(count + 1) / (resamples + 1)``."""
    if len(a) < 2 or len(b) < 2:
        return None
    xs, ys = [float(v) for v in a], [float(v) for v in b]
    rng = random.Random(seed)
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    observed = mx - my
    pooled = statistics.fmean(xs + ys)
    x0, y0 = [v - mx + pooled for v in xs], [v - my + pooled for v in ys]
    diffs, extreme = [], 0
    for _ in range(resamples):
        diffs.append(statistics.fmean(rng.choices(xs, k=len(xs))) - statistics.fmean(rng.choices(ys, k=len(ys))))
        null = statistics.fmean(rng.choices(x0, k=len(x0))) - statistics.fmean(rng.choices(y0, k=len(y0)))
        extreme += abs(null) >= abs(observed) - 1e-12
    diffs.sort()
    tail = (1.0 - level) / 2.0
    low = diffs[min(resamples - 1, int(math.floor(tail * resamples)))]
    high = diffs[min(resamples - 1, int(math.ceil((1.0 - tail) * resamples)) - 1)]
    return Bootstrap(observed, low, high, (extreme + 1) / (resamples + 1), level, resamples)
