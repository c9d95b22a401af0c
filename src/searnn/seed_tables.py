"""The tables that ``searnn report --stats`` and ``--test-against ROW`` add below the results table.

* :func:`stats_table`: each row's spread over its seeds (n, mean ± std, median, range, every seed's value);
* :func:`tests_table`: every row against a reference row of the same task, metric and evaluation data:
  difference of means, Welch's t-test and a bootstrap interval and p-value, with :data:`TESTS_NOTE` saying
  what they are. The statistics themselves are :mod:`searnn.significance`; the rows are
  :class:`searnn.report.Group`.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from searnn.errors import SearnnError
from searnn.report import Group, format_mean_std


def _format_p(p: float) -> str:
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def stats_table(groups: Sequence[Group], which: str = "test") -> str:
    """Per-row spread of the ``which`` metric over seeds: n, mean ± std, median, min-max, and the seeds' values."""
    from searnn.significance import summary

    lines = [f"| row | metric | n | {which} mean ± std | median | range | per seed |",
             "| --- | --- | ---: | ---: | ---: | ---: | --- |"]
    for g in groups:
        values = g.stat(which).values
        if not values:
            continue
        s = summary(values)
        seeds = ", ".join(f"{r.seed}: {getattr(r, which):.2f}" for r in g.runs if getattr(r, which) is not None)
        lines.append(f"| {g.label} | {g.metric} {'↓' if g.lower_is_better else '↑'} | {s.n} | "
                     f"{format_mean_std(g.stat(which))} | {s.median:.2f} | {s.low:.2f}–{s.high:.2f} | {seeds} |")
    return "\n".join(lines)


def tests_table(groups: Sequence[Group], against: Sequence[str], which: str = "test") -> tuple[str, list[dict]]:
    """Every row against each ``against`` row of the same task and metric, scored on the same data (equal
    :attr:`RunResult.eval_data`: spelling at noise 0.3 is not tested against noise 0.5): difference of means,
    Welch's t-test and a bootstrap 95% interval and p-value (:mod:`searnn.significance`). Returns the
    markdown and the JSON form."""
    from searnn.significance import bootstrap, welch

    by_label = {g.label: g for g in groups}
    unknown = [a for a in against if a not in by_label]
    if unknown:
        raise SearnnError(f"--test-against {unknown[0]!r}: no such row; rows: {', '.join(by_label)}")
    lines = [f"| row | against | {which} difference | Welch t (df) | Welch p | bootstrap 95% interval | bootstrap p |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    records = []
    for name in against:
        ref = by_label[name]
        b = ref.stat(which).values
        for g in groups:
            if g is ref or (g.task, g.metric) != (ref.task, ref.metric):
                continue
            if g.runs[0].eval_data != ref.runs[0].eval_data:  # another test set: nothing to compare
                continue
            a = g.stat(which).values
            if not a or not b:
                continue
            # a row of one seed: the difference only (neither test can tell it from seed noise)
            w, bs = welch(a, b), bootstrap(a, b)
            diff = statistics.fmean(a) - statistics.fmean(b)
            record = {"row": g.label, "against": name, "metric": g.metric, "split": which, "diff": diff,
                      "welch": None if w is None else {"t": w.t, "df": w.df, "p": w.p},
                      "bootstrap": None if bs is None else {"low": bs.low, "high": bs.high, "p": bs.p,
                                                            "resamples": bs.resamples}}
            records.append(record)
            welch_cells = ["—", "—"] if w is None else [f"{w.t:.2f} ({w.df:.1f})", _format_p(w.p)]
            boot_cells = ["—", "—"] if bs is None else [f"[{bs.low:+.2f}, {bs.high:+.2f}]", _format_p(bs.p)]
            lines.append(f"| {g.label} | {name} | {diff:+.2f} | " + " | ".join(welch_cells + boot_cells) + " |")
    return "\n".join(lines), records


TESTS_NOTE = (
    "difference: mean of the row minus mean of the row it is tested against; Welch: unequal-variance t-test, "
    "two-sided; bootstrap: 10,000 resamples of each row's seeds (interval: percentile; p: resampled under equal "
    "means), generator seed 0; —: a row of fewer than 2 seeds, not tested."
)


__all__ = ["TESTS_NOTE", "stats_table", "tests_table"]
