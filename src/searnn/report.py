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
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from searnn.cliparse import CliParser
from searnn.errors import DataError, SearnnError

RESULTS = "results.json"
METRICS_LOG = "metrics.jsonl"
RUN_MARKER = "grid_run.json"
"""Written by ``searnn experiment`` in each run dir: ``{"grid", "row", "seed"}``."""

GROUP_BY = ("row", "objective")
_SEED_DIR = re.compile(r"^seed\d+$")
_RUN_KEYS = ("task", "objective", "metric", "valid", "test")


# --------------------------------------------------------------------------------------------- finding runs


def natural_key(text: str) -> list[Any]:
    """Sort key ordering embedded numbers by value (``seed2`` before ``seed10``)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def is_run_results(data: Any) -> bool:
    """Whether a parsed ``results.json`` is a run's (not a grid's aggregate)."""
    return isinstance(data, dict) and all(k in data for k in _RUN_KEYS) and "rows" not in data


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read ({e})") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: invalid JSON (line {e.lineno}: {e.msg})") from None


def find_run_dirs(paths: Sequence[str | Path], filename: str = RESULTS) -> list[Path]:
    """Run directories under ``paths`` holding ``filename`` (searched recursively), in natural order.

    For ``results.json`` only runs' files count (a grid's aggregate is skipped). A path that does not exist
    is an error; so is finding no run at all.
    """
    found: list[Path] = []
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise DataError(f"{path}: no such file or directory")
        if path.is_file():
            if path.name != filename:
                raise DataError(f"{path}: expected a run directory (or its {filename})")
            candidates = [path]
        else:
            candidates = sorted(path.rglob(filename), key=lambda p: natural_key(str(p)))
        for candidate in candidates:
            if filename == RESULTS and not is_run_results(_read_json(candidate)):
                continue
            run_dir = candidate.parent
            key = run_dir.resolve()
            if key not in seen:
                seen.add(key)
                found.append(run_dir)
    if not found:
        where = ", ".join(str(p) for p in paths)
        raise DataError(f"no run directory with a {filename} under {where} (train the runs first)")
    return found


def read_marker(run_dir: Path) -> dict[str, Any]:
    """The ``grid_run.json`` marker of a run dir (empty when the run was not made by a grid)."""
    path = run_dir / RUN_MARKER
    if not path.is_file():
        return {}
    data = _read_json(path)
    return data if isinstance(data, dict) else {}


def row_label(run_dir: Path, marker: dict[str, Any] | None = None) -> str:
    """The row a run belongs to: the grid marker's, else its directory name (parent's for ``seed<k>``)."""
    marker = read_marker(run_dir) if marker is None else marker
    if marker.get("row"):
        return str(marker["row"])
    resolved = run_dir.resolve()
    return resolved.parent.name if _SEED_DIR.match(resolved.name) else resolved.name


# --------------------------------------------------------------------------------------------- one run


@dataclass
class RunResult:
    """The figures of one finished run (from its ``results.json``)."""

    run_dir: Path
    row: str
    task: str
    objective: str
    metric: str
    lower_is_better: bool
    seed: int | None
    valid: float | None
    test: float | None
    best_epoch: int | None
    epochs: int | None
    seconds_per_epoch: float | None
    train_seconds: float | None
    config: dict[str, Any] = field(default_factory=dict)
    """The run's resolved options, flat (``results.json``'s ``config`` sections merged)."""
    versions: tuple[str, ...] = ()
    """The code versions that trained and evaluated the run (:func:`searnn.provenance.short_version`);
    ``("unknown",)`` for runs written before versions were recorded."""
    beam_valid: float | None = None
    beam_test: float | None = None
    """``results.json``'s ``test_beam`` (``--test-beam K``): validation at the chosen len_norm, and test."""
    eval_data: dict[str, Any] = field(default_factory=dict)
    """What fixes the data the run was scored on (:func:`evaluation_data`): rows are tested against each other
    only when these agree."""


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _metric_value(section: Any, metric: str) -> float | None:
    if isinstance(section, dict):
        return _number(section.get(metric))
    return _number(section)


def load_result(run_dir: str | Path) -> RunResult:
    """Read a run dir's ``results.json`` (and grid marker) into a :class:`RunResult`."""
    run_dir = Path(run_dir)
    path = run_dir / RESULTS
    if not path.is_file():
        raise DataError(f"{run_dir}: no {RESULTS} (the run has not finished)")
    data = _read_json(path)
    if not is_run_results(data):
        raise DataError(f"{path}: not the results of a `searnn train` run (needs keys {', '.join(_RUN_KEYS)})")
    metric = str(data["metric"])
    if "lower_is_better" in data:
        lower = bool(data["lower_is_better"])
    else:
        from searnn.metrics import LOWER_IS_BETTER

        lower = LOWER_IS_BETTER.get(metric, False)
    marker = read_marker(run_dir)
    seed = data.get("seed", marker.get("seed"))
    beam = data["test_beam"] if isinstance(data.get("test_beam"), dict) else {}
    return RunResult(
        run_dir=run_dir,
        row=row_label(run_dir, marker),
        task=str(data["task"]),
        objective=str(data["objective"]),
        metric=metric,
        lower_is_better=lower,
        seed=int(seed) if isinstance(seed, int) else None,
        valid=_metric_value(data["valid"], metric),
        test=_metric_value(data["test"], metric),
        best_epoch=data.get("best_epoch") if isinstance(data.get("best_epoch"), int) else None,
        epochs=data.get("epochs") if isinstance(data.get("epochs"), int) else None,
        seconds_per_epoch=_number(data.get("seconds_per_epoch")),
        train_seconds=_number(data.get("train_seconds")),
        config=_flat_config(data.get("config")),
        versions=run_versions(data),
        beam_valid=_metric_value(beam.get("valid"), metric),
        beam_test=_metric_value(beam.get("test"), metric),
        eval_data=evaluation_data(data.get("config")),
    )


TRAINING_DATA_KEYS = frozenset({"limit_train", "train_size"})
"""Task options that change only the training set: rows that differ in them (MLE on 5x the data against
SeaRNN, say) are still scored on the same validation and test data."""


def evaluation_data(sections: Any) -> dict[str, Any]:
    """The options that fix a run's validation and test data: its task options (``results.json``'s ``config``
    section ``task``: dataset, data dir, noise, split seed, ...) except :data:`TRAINING_DATA_KEYS`, and
    ``limit_valid``. Empty for runs written without a config."""
    if not isinstance(sections, dict):
        return {}
    task = sections.get("task") if isinstance(sections.get("task"), dict) else {}
    train = sections.get("train") if isinstance(sections.get("train"), dict) else {}
    data = {k: v for k, v in task.items() if k not in TRAINING_DATA_KEYS}
    if "limit_valid" in train:
        data["limit_valid"] = train["limit_valid"]
    return data


SPLITS = ("test", "test_beam")
"""``searnn report --split``: the greedy results (``valid``, ``test``) or the beam ones (``test_beam``)."""


def select_split(runs: Sequence[RunResult], split: str) -> list[RunResult]:
    """The runs with their valid/test figures of ``split``: ``test`` as they are; ``test_beam`` replaces them by
    the beam-search ones and leaves out runs trained without ``--test-beam``."""
    if split == "test":
        return list(runs)
    return [dataclasses.replace(r, valid=r.beam_valid, test=r.beam_test) for r in runs if r.beam_test is not None]


def _flat_config(sections: Any) -> dict[str, Any]:
    """``{"train": {...}, "model": {...}}`` -> one flat dict (option names are unique across sections)."""
    flat: dict[str, Any] = {}
    if isinstance(sections, dict):
        for value in sections.values():
            if isinstance(value, dict):
                flat.update(value)
    return flat


SAME_RUN_KEYS = frozenset({"seed", "run_dir", "progress", "threads", "checkpoint_minutes", "eval_batch_size"})
"""Options that may differ between the runs of one table line: the seed, where the run lives, and options
that do not change what is trained or measured."""


def config_differences(runs: Sequence[RunResult]) -> list[str]:
    """Option names whose values differ between ``runs`` (besides :data:`SAME_RUN_KEYS`), sorted.

    A string holding the run's own seed (``warm_start: runs/base/seed3`` for seed 3) is compared with the
    seed replaced by ``{seed}``, as a grid's ``{seed}`` substitution writes it."""

    def normalised(run: RunResult, key: str) -> Any:
        value = run.config.get(key)
        if isinstance(value, str) and run.seed is not None:
            value = re.sub(rf"(?<!\d){run.seed}(?!\d)", "{seed}", value)
        return value

    known = [r for r in runs if r.config]
    keys = sorted({k for r in known for k in r.config} - SAME_RUN_KEYS)
    return [k for k in keys if len({json.dumps(normalised(r, k), sort_keys=True) for r in known}) > 1]


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


def _fmt(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


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
            w, bs = welch(a, b), bootstrap(a, b)
            if bs is None:
                continue
            record = {"row": g.label, "against": name, "metric": g.metric, "split": which, "diff": bs.diff,
                      "welch": None if w is None else {"t": w.t, "df": w.df, "p": w.p},
                      "bootstrap": {"low": bs.low, "high": bs.high, "p": bs.p, "resamples": bs.resamples}}
            records.append(record)
            welch_cells = ["—", "—"] if w is None else [f"{w.t:.2f} ({w.df:.1f})", _format_p(w.p)]
            lines.append(f"| {g.label} | {name} | {bs.diff:+.2f} | " + " | ".join(welch_cells)
                         + f" | [{bs.low:+.2f}, {bs.high:+.2f}] | {_format_p(bs.p)} |")
    return "\n".join(lines), records


TESTS_NOTE = (
    "difference: mean of the row minus mean of the row it is tested against; Welch: unequal-variance t-test, "
    "two-sided; bootstrap: 10,000 resamples of each row's seeds (interval: percentile; p: resampled under equal "
    "means), generator seed 0."
)


def run_versions(data: dict[str, Any]) -> tuple[str, ...]:
    """The code versions of a run's ``results.json``: those of its training epochs (``trained_with``) and the
    one that evaluated it (``code``), each as :func:`searnn.provenance.short_version`."""
    from searnn.provenance import short_version

    labels = [str(v) for v in data.get("trained_with", []) if isinstance(v, str)]
    code = data.get("code")
    if isinstance(code, dict):
        labels.append(short_version(code))
    elif "torch_version" in data:  # written before provenance: the package and torch versions only
        labels.append(f"v{data.get('searnn_version', '?')} torch {data['torch_version']} (no commit recorded)")
    return tuple(dict.fromkeys(labels)) or ("unknown",)


def versions_note(groups: Sequence[Group]) -> str:
    """One line naming the code versions of the runs in a table, with a warning when there are several (a
    change that only moves float rounding can move a long run by more than the seed spread)."""
    versions = list(dict.fromkeys(v for g in groups for r in g.runs for v in r.versions))
    if len(versions) <= 1:
        return f"Code: {versions[0] if versions else 'unknown'}."
    return (f"Warning: this table mixes {len(versions)} code versions ({'; '.join(versions)}): rows may not "
            "be comparable; rerun them with one version.")


def report_json(groups: Sequence[Group], group_by: str, **extra: Any) -> dict[str, Any]:
    return {**extra, "group_by": group_by, "rows": [g.to_json() for g in groups]}


def unfinished_runs(paths: Sequence[str | Path]) -> list[Path]:
    """Run dirs under ``paths`` that were started (``config.yaml``) but have no ``results.json``."""
    out = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for cfg in sorted(path.rglob("config.yaml"), key=lambda p: natural_key(str(p))):
                if (cfg.parent / METRICS_LOG).exists() or (cfg.parent / "last.pt").exists():
                    if not (cfg.parent / RESULTS).exists():
                        out.append(cfg.parent)
    return out


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
    if len({v for g in groups for r in g.runs for v in r.versions}) > 1:
        print(versions_note(groups), file=sys.stderr)
    extra: dict[str, Any] = {}
    if args.stats:
        text += "\n\n" + stats_table(groups)
    if args.test_against:
        tests, extra["tests"] = tests_table(groups, args.test_against)
        text += "\n\n" + tests + "\n\n" + TESTS_NOTE
    if args.split == "test_beam":
        text += "\n\nvalid/test: the beam test of each run (--test-beam; len_norm chosen on validation)."
    if args.paired_bs:
        from searnn.paired import PAIRED_NOTE, paired_table

        paired, extra["paired_bs"] = paired_table(groups, args.paired_bs, args.split)
        text += "\n\n" + paired + "\n\n" + PAIRED_NOTE
    if pending:
        text += f"\n\n{len(pending)} unfinished run(s) left out: " + ", ".join(str(p) for p in pending)
    print(text)
    if args.out:
        data = report_json(groups, args.group_by, unfinished=[str(p) for p in pending], **extra)
        write_output(args.out, text, data)
    return 0
