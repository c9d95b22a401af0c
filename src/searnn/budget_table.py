"""``searnn report --at-epochs E,... --at-seconds S,...``: rows compared at equal training budgets.

A final table compares each run at its own best epoch, however long it trained. Two objectives whose epochs
cost very different times (SeaRNN against MLE) are also compared at equal budgets, read from each run's
``metrics.jsonl``:

- **at E epochs**: the best validation metric among the run's first E epochs;
- **at S seconds**: the best validation metric among the epochs that ended within S seconds of training
  (``train_seconds``: cumulative training time, evaluation excluded, so a slower validation does not count).

A run that stopped (early stop, or its epoch cap) before the budget counts with its final best: it stopped
because more training had not helped, or it did not get the budget, and the table marks a row where that
happened with the number of such runs (``stopped``). A run whose first epoch alone exceeds S seconds has no
figure at S (``—`` when no seed has one). Only validation is read: the test split is evaluated once per run,
at its best-on-validation checkpoint, never at a budget.

Each cell is the mean ± std over the row's seeds (n in brackets when fewer than the row's seeds have a
figure). Nothing here needs torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from searnn.errors import ConfigError, DataError
from searnn.report import Stat, format_mean_std
from searnn.run_results import METRICS_LOG, RunResult, epoch_records

BUDGET_NOTE = (
    "budgets: best validation metric within the first E epochs / within S seconds of training time (metrics.jsonl "
    "`train_seconds`, evaluation excluded), mean ± std over seeds; [n]: seeds with a figure when fewer than the "
    "row's; stopped: runs that ended before the budget and count with their final best; test is not read."
)


def parse_budgets(text: str | None, what: str) -> list[float]:
    """``"5,10,20"`` -> ``[5.0, 10.0, 20.0]`` (positive numbers, in the order given); ``None`` -> ``[]``."""
    if text is None:
        return []
    values: list[float] = []
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            raise ConfigError(f"{what}: {part.strip()!r} is not a number (expected e.g. 5,10,20)") from None
        if not value > 0:
            raise ConfigError(f"{what}: budgets must be positive, got {part.strip()!r}")
        values.append(value)
    return values


def _curve(run: RunResult) -> list[tuple[int, float, float]]:
    """``(epoch, train_seconds, valid metric)`` of every logged epoch, in epoch order."""
    path = run.run_dir / METRICS_LOG
    if not path.is_file():
        raise DataError(f"{path}: missing; budgets are read from each run's per-epoch log")
    key = f"valid_{run.metric}"
    curve: list[tuple[int, float, float]] = []
    for epoch, rec in sorted(epoch_records(run.run_dir).items()):
        value, seconds = rec.get(key), rec.get("train_seconds")
        if not isinstance(value, (int, float)) or not isinstance(seconds, (int, float)):
            raise DataError(f"{path}: epoch {epoch} has no numeric `{key}` and `train_seconds`")
        curve.append((epoch, float(seconds), float(value)))
    return curve


def best_within(run: RunResult, *, epochs: float | None = None,
                seconds: float | None = None) -> tuple[float | None, bool]:
    """Best validation metric of ``run`` within ``epochs`` epochs or ``seconds`` of training, and whether the
    run ended before that budget (then the figure is its final best). ``None`` when no epoch fits."""
    curve = _curve(run)
    if not curve:
        return None, False
    if epochs is not None:
        fits = [c for c in curve if c[0] <= epochs]
        stopped = curve[-1][0] < epochs
    else:
        assert seconds is not None
        fits = [c for c in curve if c[1] <= seconds]
        stopped = curve[-1][1] < seconds
    if not fits:
        return None, stopped
    pick = min if run.lower_is_better else max
    return pick(v for _, _, v in fits), stopped


def _fmt_budget(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value / 60:g} min" if value >= 60 and value % 60 == 0 else f"{value:g} s"
    return f"{value:g} ep"


def budget_table(groups: Sequence[Any], at_epochs: Sequence[float],
                 at_seconds: Sequence[float]) -> tuple[str, list[dict[str, Any]]]:
    """Markdown table (one line per group, one column per budget) and its JSON rows with every seed's value.
    ``groups``: :class:`searnn.report.Group`-like objects (``label``, ``objective``, ``metric``, ``runs``)."""
    budgets = [("epochs", e) for e in at_epochs] + [("seconds", s) for s in at_seconds]
    heads = [_fmt_budget(v, "ep" if kind == "epochs" else "s") for kind, v in budgets]
    lines = ["| row | objective | metric | " + " | ".join(heads) + " |",
             "| --- | --- | --- |" + " ---: |" * len(budgets)]
    rows: list[dict[str, Any]] = []
    for group in groups:
        if not group.runs:
            continue
        cells: list[str] = []
        row: dict[str, Any] = {"row": group.label, "objective": group.objective, "metric": group.metric,
                               "budgets": []}
        for (kind, value), head in zip(budgets, heads, strict=True):
            per_seed = [(run, *best_within(run, **{kind: value})) for run in group.runs]
            stat = Stat.of(v for _, v, _ in per_seed)
            stopped = sum(1 for _, v, s in per_seed if s and v is not None)
            text = format_mean_std(stat)
            if 0 < stat.n < len(group.runs):
                text += f" [{stat.n}]"
            if stopped:
                text += f" ({stopped} stopped)"
            cells.append(text)
            row["budgets"].append({"kind": kind, "budget": value, "label": head, **stat.to_json(),
                                   "stopped": stopped,
                                   "seeds": [{"seed": run.seed, "value": v, "stopped": s} for run, v, s in per_seed]})
        lines.append(f"| {group.label} | {group.objective} | {group.metric} | " + " | ".join(cells) + " |")
        rows.append(row)
    return "\n".join(lines), rows
