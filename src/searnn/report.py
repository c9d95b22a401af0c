"""``searnn report``: aggregate finished runs into a results table (markdown and JSON) without training.

Each argument is a run directory (holding the ``results.json`` that ``searnn train`` writes at the end) or
any directory above run directories, e.g. the ``out`` directory of a ``searnn experiment`` grid: it is
searched recursively for run ``results.json`` files (a grid's own aggregate ``results.json`` is recognised
and ignored). Runs are grouped (``--group-by``):

* ``row`` (default): the grid row the run belongs to (read from the ``grid_run.json`` marker that
  ``searnn experiment`` writes in each run dir); for a run made outside a grid, the name of its directory,
  or of the parent directory when the run dir itself is named ``seed<k>``;
* ``objective``: the training objective.

The runs of one group must differ only in their seed (and run directory, and options that do not change
the result such as ``threads``): otherwise the report is refused with the list of differing options, since a
mean over a 40-epoch and a 2-epoch run means nothing; ``--force`` groups them anyway.

Runs of different tasks or metrics never share a group. One table line per group:

| column | content |
| --- | --- |
| row / objective | the group label |
| task, objective, metric | from the runs' ``results.json`` (``↓``: lower is better) |
| valid, test | the metric of the best-on-validation checkpoint: mean ± sample standard deviation over the seeds |
| n | number of finished runs (``k/m`` when a grid expected m seeds and only k finished) |
| best epoch, epochs | mean over seeds of the best-on-validation epoch and of the epochs trained |
| s/epoch | mean over seeds of the mean training seconds per epoch (evaluation excluded) |
| train time | total training wall time summed over the seeds (evaluation excluded) |

The best mean valid and test values of each task (among two or more groups) are set in bold. The JSON form
(``--out FILE.json``) holds the same numbers unrounded, with the per-seed values and run directories.

Reading the runs (finding run dirs, :class:`RunResult`, :func:`load_result`) is :mod:`searnn.run_results`,
whose names are re-exported here; the ``--stats`` and ``--test-against`` tables are :mod:`searnn.seed_tables`,
``--paired-bs`` is :mod:`searnn.paired`, ``--diagnostics`` is :mod:`searnn.diagnostics_table`, ``--winners`` is
:mod:`searnn.winners_table`, ``--at-epochs`` / ``--at-seconds`` are :mod:`searnn.budget_table`, ``--against`` is
:mod:`searnn.headlines`.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from searnn.cliparse import CliParser
from searnn.config import early_stop_due
from searnn.errors import DataError, SearnnError
from searnn.run_results import (
    METRICS_LOG,
    RESULTS,
    RUN_MARKER,
    SPLITS,
    TRAINING_DATA_KEYS,
    RunResult,
    evaluation_data,
    find_run_dirs,
    is_run_results,
    load_result,
    natural_key,
    read_marker,
    row_label,
    run_versions,
    select_split,
    unfinished_runs,
)
from searnn.run_results import _read_json as _read_json  # private, but plot.py read it from here

GROUP_BY = ("row", "objective")


# --------------------------------------------------------------------------------------------- checks


SAME_RUN_KEYS = frozenset({"seed", "run_dir", "progress", "threads", "checkpoint_minutes", "eval_batch_size"})
"""Options that may differ between the runs of one table line: the seed, where the run lives, and options
that do not change what is trained or measured."""


def config_differences(runs: Sequence[RunResult]) -> list[str]:
    """Option names whose values differ between ``runs`` (besides :data:`SAME_RUN_KEYS`), sorted.

    A string holding the run's own seed (``warm_start: runs/base/seed3`` for seed 3) is compared with the
    seed replaced by ``{seed}``, as a grid's ``{seed}`` substitution writes it. ``epochs`` (the cap) does not
    count as a difference when every run with a smaller cap than the largest stopped early before it."""

    def normalised(run: RunResult, key: str) -> Any:
        value = run.config.get(key)
        if isinstance(value, str) and run.seed is not None:
            value = re.sub(rf"(?<!\d){run.seed}(?!\d)", "{seed}", value)
        return value

    known = [r for r in runs if r.config]
    keys = sorted({k for r in known for k in r.config} - SAME_RUN_KEYS)
    diffs = [k for k in keys if len({json.dumps(normalised(r, k), sort_keys=True) for r in known}) > 1]
    if "epochs" in diffs and _same_training_under_largest_cap(known):
        diffs.remove("epochs")
    return diffs


def _early_stopped(run: RunResult) -> bool:
    """Whether early stopping, not the epoch cap, ended ``run``: it trained fewer epochs than its cap and its
    last ``early_stop`` epochs brought no validation gain, so any larger cap would have stopped it at the same
    epoch (runs with a ``time_budget`` are left out: the budget may have cut them)."""
    cap, patience = run.config.get("epochs"), run.config.get("early_stop")
    if run.config.get("time_budget") or not isinstance(cap, int) or not isinstance(patience, int):
        return False
    if run.epochs is None or run.best_epoch is None:
        return False
    return run.epochs < cap and early_stop_due(run.epochs, run.best_epoch, patience)


def _same_training_under_largest_cap(runs: Sequence[RunResult]) -> bool:
    """Runs that differ in their epoch cap trained as under the largest one when every run with a smaller cap
    was stopped early before reaching it (a grid whose cap was raised while it ran, e.g. 25 -> 40)."""
    caps = [r.config.get("epochs") for r in runs]
    if not all(isinstance(c, int) for c in caps):
        return False
    largest = max(caps)
    return all(_early_stopped(r) for r, c in zip(runs, caps, strict=True) if c < largest)


def check_homogeneous(groups: Sequence[Group], group_by: str) -> None:
    """Refuse a table line that averages runs of different configurations (``--force`` skips this)."""
    for g in groups:
        diffs = config_differences(g.runs)
        if diffs:
            raise SearnnError(
                f"--group-by {group_by}: the runs of {g.label!r} differ in more than the seed "
                f"({', '.join(diffs)}); their mean would mix configurations. Pass --force to group them anyway"
            )


# --------------------------------------------------------------------------------------------- groups


@dataclass
class Stat:
    """Summary of one quantity over the seeds of a group (``None`` values are left out)."""

    values: list[float]

    @classmethod
    def of(cls, values: Iterable[float | int | None]) -> Stat:
        return cls([float(v) for v in values if v is not None])

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:
        return sum(self.values) / self.n if self.values else None

    @property
    def std(self) -> float | None:
        """Sample standard deviation (n - 1 in the denominator); ``None`` below two values."""
        if self.n < 2:
            return None
        m = sum(self.values) / self.n
        return math.sqrt(sum((v - m) ** 2 for v in self.values) / (self.n - 1))

    @property
    def total(self) -> float | None:
        return sum(self.values) if self.values else None

    def to_json(self) -> dict[str, Any]:
        return {"mean": self.mean, "std": self.std, "n": self.n, "values": self.values}


@dataclass
class Group:
    """The runs of one table line. ``expected``: seeds a grid planned for it (``None`` outside a grid)."""

    label: str
    task: str
    objective: str
    metric: str
    lower_is_better: bool
    runs: list[RunResult] = field(default_factory=list)
    expected: int | None = None

    def stat(self, name: str) -> Stat:
        return Stat.of(getattr(r, name) for r in self.runs)

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "task": self.task,
            "objective": self.objective,
            "metric": self.metric,
            "lower_is_better": self.lower_is_better,
            "n": len(self.runs),
            "expected": self.expected,
            "seeds": [r.seed for r in self.runs],
            "valid": self.stat("valid").to_json(),
            "test": self.stat("test").to_json(),
            "best_epoch": self.stat("best_epoch").to_json(),
            "epochs": self.stat("epochs").to_json(),
            "seconds_per_epoch": self.stat("seconds_per_epoch").to_json(),
            "train_seconds": {**self.stat("train_seconds").to_json(), "total": self.stat("train_seconds").total},
            "run_dirs": [str(r.run_dir) for r in self.runs],
            "versions": [list(r.versions) for r in self.runs],
        }


def group_runs(runs: Sequence[RunResult], group_by: str = "row") -> list[Group]:
    """Group runs by row label or objective (and always by task and metric), in order of first appearance."""
    if group_by not in GROUP_BY:
        raise SearnnError(f"unknown --group-by {group_by!r}; valid: {', '.join(GROUP_BY)}")
    groups: dict[tuple[str, str, str], Group] = {}
    for r in runs:
        label = r.row if group_by == "row" else r.objective
        key = (label, r.task, r.metric)
        if key not in groups:
            groups[key] = Group(label, r.task, r.objective, r.metric, r.lower_is_better)
        g = groups[key]
        if r.objective not in g.objective.split(","):
            g.objective += "," + r.objective
        g.runs.append(r)
    for g in groups.values():
        g.runs.sort(key=lambda r: (r.seed is None, r.seed or 0, natural_key(str(r.run_dir))))
    return list(groups.values())


def grid_row_order(paths: Sequence[str | Path]) -> list[str]:
    """Row names in grid order, from the ``grid.yaml`` copy that ``searnn experiment`` keeps in its out dir."""
    import yaml

    order: list[str] = []
    for raw in paths:
        grid_file = Path(raw) / "grid.yaml"
        if not grid_file.is_file():
            continue
        try:
            data = yaml.safe_load(grid_file.read_text())
        except (OSError, yaml.YAMLError):
            continue
        runs = data.get("runs") if isinstance(data, dict) else None
        for entry in runs if isinstance(runs, list) else []:
            if isinstance(entry, dict) and isinstance(entry.get("name"), str) and entry["name"] not in order:
                order.append(entry["name"])
    return order


def in_order(items: list[Any], order: Sequence[str], label: Any = lambda item: item.label) -> list[Any]:
    """``items`` sorted by the position of their label in ``order`` (others after, keeping their order)."""
    rank = {name: i for i, name in enumerate(order)}
    return sorted(items, key=lambda item: rank.get(label(item), len(rank)))


# --------------------------------------------------------------------------------------------- formatting


def format_seconds(seconds: float | None) -> str:
    """``12.3s``, ``4m05s`` or ``2h03m``."""
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        m, s = divmod(int(round(seconds)), 60)
        return f"{m}m{s:02d}s"
    h, m = divmod(int(round(seconds / 60)), 60)
    return f"{h}h{m:02d}m"


def format_mean_std(stat: Stat, digits: int = 2) -> str:
    """``mean ± std`` (just the mean for a single value, ``—`` for none)."""
    if stat.mean is None:
        return "—"
    if stat.std is None:
        return f"{stat.mean:.{digits}f}"
    return f"{stat.mean:.{digits}f} ± {stat.std:.{digits}f}"


def _format_count(stat: Stat) -> str:
    if stat.mean is None:
        return "—"
    if all(v == stat.values[0] for v in stat.values) and float(stat.values[0]).is_integer():
        return str(int(stat.values[0]))
    return f"{stat.mean:.1f}"


def _best_labels(groups: Sequence[Group], which: str) -> set[int]:
    """Indices of the groups holding the best mean ``which`` (valid/test) of their (task, metric)."""
    best: dict[tuple[str, str], tuple[float, list[int]]] = {}
    counts: dict[tuple[str, str], int] = {}
    for i, g in enumerate(groups):
        mean = g.stat(which).mean
        if mean is None:
            continue
        key = (g.task, g.metric)
        counts[key] = counts.get(key, 0) + 1
        score = -mean if g.lower_is_better else mean
        if key not in best or score > best[key][0]:
            best[key] = (score, [i])
        elif score == best[key][0]:
            best[key][1].append(i)
    return {i for key, (_, idx) in best.items() if counts[key] > 1 for i in idx}


def markdown_table(groups: Sequence[Group], group_by: str = "row") -> str:
    """The results table in GitHub markdown (see the module docstring for the columns)."""
    first = "row" if group_by == "row" else "objective"
    header = [first, "task"] + (["objective"] if group_by == "row" else []) + [
        "metric", "valid", "test", "n", "best epoch", "epochs", "s/epoch", "train time"]
    align = ["---"] * (len(header) - 8) + ["---"] + ["---:"] * 7
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    bold = {"valid": _best_labels(groups, "valid"), "test": _best_labels(groups, "test")}
    for i, g in enumerate(groups):
        n = len(g.runs)
        count = f"{n}/{g.expected}" if g.expected is not None and g.expected != n else str(n)
        arrow = "↓" if g.lower_is_better else "↑"
        cells = [g.label, g.task] + ([g.objective] if group_by == "row" else [])
        cells.append(f"{g.metric} {arrow}" if g.runs else g.metric)
        for which in ("valid", "test"):
            text = format_mean_std(g.stat(which))
            cells.append(f"**{text}**" if i in bold[which] else text)
        spe = g.stat("seconds_per_epoch").mean
        cells += [
            count,
            _format_count(g.stat("best_epoch")),
            _format_count(g.stat("epochs")),
            "—" if spe is None else f"{spe:.2f}" if spe < 10 else f"{spe:.1f}",
            format_seconds(g.stat("train_seconds").total),
        ]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


TABLE_NOTE = (
    "valid/test: metric of the best-on-validation checkpoint, mean ± sample std over the n seeds; "
    "best epoch, epochs, s/epoch: means over seeds; train time: training wall time summed over seeds "
    "(evaluation excluded); ↓/↑: lower/higher is better; bold: best of its task."
)


def versions_note(groups: Sequence[Group]) -> str:
    """One line naming the code versions of the runs in a table, with a warning when there are several (a
    change that only moves float rounding can move a long run by more than the seed spread), and the
    hardware that ran them when recorded (with the number of runs on each when it differs: the same code and
    seed can follow another path on another CPU model)."""
    versions = list(dict.fromkeys(v for g in groups for r in g.runs for v in r.versions))
    digests = {v: d for g in groups for r in g.runs for v, d in r.training_code.items()}
    same = {(digests.get(v), v.partition(" torch ")[2]) for v in versions}
    if len(versions) <= 1:
        note = f"Code: {versions[0] if versions else 'unknown'}."
    elif len(same) == 1 and None not in next(iter(same)):
        note = (f"Code: {len(versions)} commits with the same training code (digest {next(iter(same))[0]}; they "
                f"differ only in reporting modules): {'; '.join(versions)}.")
    else:
        note = (f"Warning: this table mixes {len(versions)} code versions ({'; '.join(versions)}): rows may "
                "not be comparable; rerun them with one version.")
    counts = Counter(r.hardware for g in groups for r in g.runs if r.hardware is not None)
    if len(counts) == 1:
        note += f" Hardware: {next(iter(counts))}."
    elif counts:
        parts = [f"{name} ({n} run{'' if n == 1 else 's'})" for name, n in counts.items()]
        note += " Hardware: " + "; ".join(parts) + "."
    return note


def report_json(groups: Sequence[Group], group_by: str, **extra: Any) -> dict[str, Any]:
    return {**extra, "group_by": group_by, "rows": [g.to_json() for g in groups]}


def write_output(path: str | Path, markdown: str, data: dict[str, Any]) -> Path:
    """Write ``data`` as JSON when ``path`` ends in ``.json``, else the markdown text."""
    from searnn.fileio import atomic_write_text

    out = Path(path)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"--out {out}: cannot create its directory ({e.strerror or e})") from None
    if out.suffix.lower() == ".json":
        atomic_write_text(json.dumps(data, indent=2, default=str) + "\n", out)
    else:
        atomic_write_text(markdown + "\n", out)
    return out


def main(argv: list[str]) -> int:
    parser = CliParser(
        prog="searnn report",
        description="Aggregate finished runs (run dirs, or directories above them such as a grid's out dir) "
        "into a table: metric mean ± std over seeds, epochs, time. No training.",
    )
    parser.add_argument("paths", nargs="+", metavar="RUN_DIR", help="run directories or directories above them")
    parser.add_argument("--group-by", choices=GROUP_BY, default="row",
                        help="one line per grid row (default) or per objective")
    parser.add_argument("--out", default=None, help="also write the table to FILE (.md) or the JSON form (.json)")
    parser.add_argument("--force", action="store_true",
                        help="group runs whose options differ in more than the seed (refused by default)")
    parser.add_argument("--stats", action="store_true",
                        help="also print each row's test spread over seeds: median, range, every seed's value")
    parser.add_argument("--test-against", action="append", default=[], metavar="ROW",
                        help="also test every row of the same task and evaluation data against ROW (Welch's "
                        "t-test and a bootstrap of the difference of test means); repeatable")
    parser.add_argument("--split", choices=SPLITS, default="test",
                        help="test: the greedy valid/test figures (default); test_beam: those of the beam test "
                        "(--test-beam K, len_norm chosen on validation; runs without one are left out)")
    parser.add_argument("--paired-bs", action="append", default=[], metavar="ROW", dest="paired_bs",
                        help="also test seed k of every row against seed k of ROW by paired bootstrap resampling "
                        "of the test sentences (sacreBLEU --paired-bs; BLEU runs; reads each run's saved test "
                        "decoding); repeatable")
    parser.add_argument("--diagnostics", action="store_true",
                        help="also print the loss-smoothing training diagnostics of each row at its best epoch: "
                        "ground-truth mass of the token target, how often the model's top-1 is a similarity "
                        "neighbour, sampled distance and effective sample size (see searnn.diagnostics_table)")
    parser.add_argument("--winners", action="store_true",
                        help="also print the tuning read-out: per objective, the row with the best mean validation "
                        "metric, the runner-up and margin, the winner's values of the options its rows vary, and "
                        "whether it sits at the edge of a searched range (see searnn.winners_table)")
    parser.add_argument("--at-epochs", default=None, metavar="E,...", dest="at_epochs",
                        help="also compare the rows at equal epochs: each run's best validation metric within its "
                        "first E epochs, mean ± std over seeds, one column per budget (see searnn.budget_table)")
    parser.add_argument("--at-seconds", default=None, metavar="S,...", dest="at_seconds",
                        help="also compare the rows at equal training time: each run's best validation metric "
                        "among the epochs that ended within S seconds of training (evaluation excluded)")
    parser.add_argument("--against", default=None, metavar="HEADLINES.json",
                        help="check the runs against the stated figures of a headlines file (see "
                        "searnn.headlines): print stated, today's and whether today's lies within the stated "
                        "spread; exit status 1 when one does not")
    args = parser.parse_args(argv)
    if args.against:
        from searnn.headlines import check_main

        return check_main(args.against, args.paths)
    all_runs = [load_result(d) for d in find_run_dirs(args.paths)]
    runs = select_split(all_runs, args.split)
    if len(runs) < len(all_runs):
        print(f"searnn report: {len(all_runs) - len(runs)} run(s) without a beam test (--test-beam) left out",
              file=sys.stderr)
    groups = group_runs(runs, args.group_by)
    if not args.force:
        check_homogeneous(groups, args.group_by)
    if args.group_by == "row":
        groups = in_order(groups, grid_row_order(args.paths))
    table = markdown_table(groups, args.group_by)
    pending = unfinished_runs(args.paths)
    text = table + "\n\n" + TABLE_NOTE + "\n\n" + versions_note(groups)
    if versions_note(groups).startswith("Warning"):
        print(versions_note(groups), file=sys.stderr)
    extra: dict[str, Any] = {}
    if args.stats:
        from searnn.seed_tables import stats_table

        text += "\n\n" + stats_table(groups)
    if args.test_against:
        from searnn.seed_tables import TESTS_NOTE, tests_table

        tests, extra["tests"] = tests_table(groups, args.test_against)
        text += "\n\n" + tests + "\n\n" + TESTS_NOTE
    if args.split == "test_beam":
        text += "\n\nvalid/test: the beam test of each run (--test-beam; len_norm chosen on validation)."
    if args.paired_bs:
        from searnn.paired import PAIRED_NOTE, paired_table

        paired, extra["paired_bs"] = paired_table(groups, args.paired_bs, args.split)
        text += "\n\n" + paired + "\n\n" + PAIRED_NOTE
    if args.diagnostics:
        from searnn.diagnostics_table import DIAGNOSTICS_NOTE, diagnostics_table

        diag, extra["diagnostics"] = diagnostics_table(groups)
        text += "\n\n" + diag + "\n\n" + DIAGNOSTICS_NOTE
    if args.winners:
        from searnn.winners_table import WINNERS_NOTE, winners_table

        winners, extra["winners"] = winners_table(groups)
        text += "\n\n" + winners + "\n\n" + WINNERS_NOTE
    if args.at_epochs or args.at_seconds:
        from searnn.budget_table import BUDGET_NOTE, budget_table, parse_budgets

        budgets, extra["budgets"] = budget_table(groups, parse_budgets(args.at_epochs, "--at-epochs"),
                                                 parse_budgets(args.at_seconds, "--at-seconds"))
        text += "\n\n" + budgets + "\n\n" + BUDGET_NOTE
    if pending:
        text += f"\n\n{len(pending)} unfinished run(s) left out: " + ", ".join(str(p) for p in pending)
    print(text)
    if args.out:
        data = report_json(groups, args.group_by, unfinished=[str(p) for p in pending], **extra)
        write_output(args.out, text, data)
    return 0


__all__ = [
    "GROUP_BY", "METRICS_LOG", "RESULTS", "RUN_MARKER", "SAME_RUN_KEYS", "SPLITS", "TABLE_NOTE", "TRAINING_DATA_KEYS",
    "Group", "RunResult", "Stat", "check_homogeneous", "config_differences", "evaluation_data", "find_run_dirs",
    "format_mean_std", "format_seconds", "grid_row_order", "in_order", "is_run_results", "load_result", "main",
    "markdown_table", "natural_key", "read_marker", "report_json", "row_label", "run_versions", "select_split",
    "unfinished_runs", "versions_note", "write_output",
]
