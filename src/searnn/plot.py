"""``searnn plot``: learning curves of runs, the validation metric against epochs and training time.

Each argument is a run directory (holding ``metrics.jsonl``, finished or not) or a directory above run
directories (e.g. a grid's out dir), searched recursively. Runs are grouped as in ``searnn report``
(``--group-by row`` or ``objective``; never across tasks or metrics). Each group is drawn as one line, the
mean over its seeds, with the spread of the seeds shaded (``--band minmax``, default: the lowest and highest
seed; ``--band std``: mean ± sample std; ``--band seeds``: every seed's own curve, thin, under the mean).
At epoch *e* the statistics are over the seeds that reached *e*
(runs may stop early).

Panels: ``--x epoch`` (metric after each epoch), ``--x time`` (against the cumulative *training* wall
clock, evaluation excluded: ``train_seconds`` of ``metrics.jsonl``; the x position of epoch *e* is the mean
over seeds of their time at *e*), or ``--x both`` (default, side by side). One row of panels per
(task, metric) found. Output: a PNG (matplotlib, Agg backend; no display needed).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from searnn import report
from searnn.cliparse import CliParser
from searnn.errors import DataError, SearnnError
from searnn.run_results import epoch_records

X_MODES = ("both", "epoch", "time")
BANDS = ("minmax", "std", "seeds")


@dataclass
class Curve:
    """The validation curve of one run: per epoch, the metric and the cumulative training seconds."""

    run_dir: Path
    row: str
    task: str
    objective: str
    metric: str
    lower_is_better: bool
    epochs: list[int]
    values: list[float]
    seconds: list[float]


def _run_info(run_dir: Path) -> tuple[str, str]:
    """(task, objective) of a run: from results.json when finished, else from config.yaml."""
    results = run_dir / report.RESULTS
    if results.is_file():
        data = report._read_json(results)
        if report.is_run_results(data):
            return str(data["task"]), str(data["objective"])
    config = run_dir / "config.yaml"
    if config.is_file():
        from searnn.config import read_yaml

        values = read_yaml(config)
        return str(values.get("task", "?")), str(values.get("objective", "?"))
    return "?", "?"


def load_curve(run_dir: str | Path) -> Curve:
    """Read a run's ``metrics.jsonl`` (the last record of an epoch wins if it was logged twice)."""
    from searnn.metrics import LOWER_IS_BETTER

    run_dir = Path(run_dir)
    path = run_dir / report.METRICS_LOG
    records = epoch_records(run_dir)
    if not records:
        raise DataError(f"{path}: no epoch logged yet")
    metric = next(k[len("valid_"):] for k in records[min(records)] if k.startswith("valid_"))
    task, objective = _run_info(run_dir)
    epochs = sorted(records)
    try:
        values = [float(records[e].get(f"valid_{metric}", math.nan)) for e in epochs]
        seconds = [float(records[e].get("train_seconds", math.nan)) for e in epochs]
    except (TypeError, ValueError):
        raise DataError(f"{path}: a `valid_{metric}` or `train_seconds` value is not a number") from None
    return Curve(run_dir, report.row_label(run_dir), task, objective, metric,
                 LOWER_IS_BETTER.get(metric, False), epochs, values, seconds)


@dataclass
class CurveGroup:
    """Seeds of one group, summarised per epoch: mean, band low/high, mean training time."""

    label: str
    task: str
    metric: str
    lower_is_better: bool
    curves: list[Curve] = field(default_factory=list)

    def summary(self, band: str = "minmax") -> dict[str, list[float]]:
        epochs = sorted({e for c in self.curves for e in c.epochs})
        out: dict[str, list[float]] = {"epoch": [], "mean": [], "low": [], "high": [], "seconds": []}
        for e in epochs:
            vals, secs = [], []
            for c in self.curves:
                if e in c.epochs:
                    i = c.epochs.index(e)
                    if math.isfinite(c.values[i]):
                        vals.append(c.values[i])
                        secs.append(c.seconds[i])
            if not vals:
                continue
            mean = sum(vals) / len(vals)
            if band == "std":
                std = report.Stat(vals).std or 0.0
                low, high = mean - std, mean + std
            else:
                low, high = min(vals), max(vals)
            finite = [s for s in secs if math.isfinite(s)]
            out["epoch"].append(float(e))
            out["mean"].append(mean)
            out["low"].append(low)
            out["high"].append(high)
            out["seconds"].append(sum(finite) / len(finite) if finite else math.nan)
        return out


def group_curves(curves: Sequence[Curve], group_by: str = "row") -> list[CurveGroup]:
    if group_by not in report.GROUP_BY:
        raise SearnnError(f"unknown --group-by {group_by!r}; valid: {', '.join(report.GROUP_BY)}")
    groups: dict[tuple[str, str, str], CurveGroup] = {}
    for c in curves:
        label = c.row if group_by == "row" else c.objective
        key = (label, c.task, c.metric)
        if key not in groups:
            groups[key] = CurveGroup(label, c.task, c.metric, c.lower_is_better)
        groups[key].curves.append(c)
    return list(groups.values())


def _time_unit(max_seconds: float) -> tuple[float, str]:
    if max_seconds >= 3 * 3600:
        return 3600.0, "h"
    if max_seconds >= 180:
        return 60.0, "min"
    return 1.0, "s"


def plot_groups(groups: Sequence[CurveGroup], out: str | Path, x: str = "both", band: str = "minmax",
                title: str | None = None, log_y: bool = False) -> Path:
    """Draw the groups' curves to a PNG at ``out``; returns its path. ``log_y``: logarithmic metric axis
    (error rates that fall over orders of magnitude)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if x not in X_MODES:
        raise SearnnError(f"unknown --x {x!r}; valid: {', '.join(X_MODES)}")
    if band not in BANDS:
        raise SearnnError(f"unknown --band {band!r}; valid: {', '.join(BANDS)}")
    modes = ["epoch", "time"] if x == "both" else [x]
    panels: dict[tuple[str, str], list[CurveGroup]] = {}
    for g in groups:
        panels.setdefault((g.task, g.metric), []).append(g)
    n_rows, n_cols = len(panels), len(modes)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(6.4 * n_cols, 4.4 * n_rows), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key().get("color", ["C0"])
    band_text = {"minmax": "shaded: min–max over seeds", "std": "shaded: ± std over seeds",
                 "seeds": "thin: each seed"}[band]
    for r, ((task, metric), members) in enumerate(panels.items()):
        summaries = [g.summary(band) for g in members]
        max_secs = max((s for summ in summaries for s in summ["seconds"] if math.isfinite(s)), default=0.0)
        scale, unit = _time_unit(max_secs)
        lower = members[0].lower_is_better
        for c, mode in enumerate(modes):
            ax = axes[r][c]
            for k, (g, summ) in enumerate(zip(members, summaries, strict=True)):
                if not summ["epoch"]:
                    continue
                xs = summ["epoch"] if mode == "epoch" else [s / scale for s in summ["seconds"]]
                color = colors[k % len(colors)]
                marker = "o" if len(xs) <= 30 else None
                ax.plot(xs, summ["mean"], color=color, marker=marker, markersize=3.5, linewidth=1.8,
                        label=f"{g.label} (n={len(g.curves)})")
                if band == "seeds":
                    for curve in g.curves:
                        cx = [float(e) for e in curve.epochs] if mode == "epoch" else [
                            t / scale for t in curve.seconds]
                        ax.plot(cx, curve.values, color=color, linewidth=0.8, alpha=0.45)
                elif len(g.curves) > 1:
                    ax.fill_between(xs, summ["low"], summ["high"], color=color, alpha=0.2, linewidth=0)
            ax.set_xlabel("epoch" if mode == "epoch" else f"training time ({unit}, evaluation excluded)")
            ax.set_ylabel(f"valid {metric} ({'lower' if lower else 'higher'} is better)")
            ax.set_title(f"{task}: validation {metric} vs {'epoch' if mode == 'epoch' else 'training time'}",
                         fontsize=11)
            ax.grid(True, alpha=0.3, which="both" if log_y else "major")
            if log_y:
                ax.set_yscale("log")
            if mode == "epoch":
                ax.xaxis.get_major_locator().set_params(integer=True)
            ax.legend(fontsize=8, loc="best", title=f"mean, {band_text}", title_fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str]) -> int:
    parser = CliParser(
        prog="searnn plot",
        description="Plot the validation metric of runs against epochs and training time (PNG).",
    )
    parser.add_argument("paths", nargs="+", metavar="RUN_DIR", help="run directories or directories above them")
    parser.add_argument("--out", required=True, help="output PNG file")
    parser.add_argument("--x", choices=X_MODES, default="both", help="x axis: epoch, time, or both panels (default)")
    parser.add_argument("--group-by", choices=report.GROUP_BY, default="row", help="one line per row or objective")
    parser.add_argument("--band", choices=BANDS, default="minmax",
                        help="seed spread: min-max (default), ± std, or every seed's curve")
    parser.add_argument("--title", default=None, help="figure title")
    parser.add_argument("--log-y", action="store_true", help="logarithmic metric axis")
    args = parser.parse_args(argv)
    if not re.search(r"\.png$", args.out, re.IGNORECASE):
        raise SearnnError(f"--out {args.out}: expected a .png file name")
    curves = [load_curve(d) for d in report.find_run_dirs(args.paths, report.METRICS_LOG)]
    groups = group_curves(curves, args.group_by)
    if args.group_by == "row":
        groups = report.in_order(groups, report.grid_row_order(args.paths))
    path = plot_groups(groups, args.out, x=args.x, band=args.band, title=args.title, log_y=args.log_y)
    print(f"wrote {path} ({len(groups)} curve(s) from {len(curves)} run(s))")
    return 0
