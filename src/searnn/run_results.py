"""Finished runs on disk: find run directories and read each one's ``results.json`` into a :class:`RunResult`.

* :func:`find_run_dirs`: the run dirs under some paths (recursively, natural order; a grid's aggregate
  ``results.json`` is not a run's and is skipped), :func:`unfinished_runs`: those started but not finished;
* :func:`load_result`: one run's figures (metric on valid and test at the best-on-validation checkpoint,
  epochs, times, the beam test), its flat resolved options, its grid row (:func:`row_label`, from the
  ``grid_run.json`` marker), the code versions that made it (:func:`run_versions`) and what fixes the data it
  was scored on (:func:`evaluation_data`);
* :func:`select_split`: the greedy or the beam-search figures (``searnn report --split``);
* :func:`epoch_records`: a run's per-epoch ``metrics.jsonl`` records (curves, training diagnostics).

Grouping runs into table lines and formatting the tables is :mod:`searnn.report`, which re-exports these names.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from searnn.errors import DataError

RESULTS = "results.json"
METRICS_LOG = "metrics.jsonl"
RUN_MARKER = "grid_run.json"
"""Written by ``searnn experiment`` in each run dir: ``{"grid", "row", "seed"}``."""

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
    training_code: dict[str, str | None] = field(default_factory=dict)
    """Each of ``versions`` -> its training-code digest (:func:`searnn.provenance.training_code_digest`, recorded
    or read from git for a clean commit; ``None`` when neither is possible)."""
    hardware: str | None = None
    """The processor that evaluated the run (``results.json`` ``code.hardware``); ``None`` when not recorded."""
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
        training_code=run_training_code(data),
        hardware=_hardware(data),
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


def epoch_records(run_dir: str | Path) -> dict[int, dict[str, Any]]:
    """A run's ``metrics.jsonl`` by epoch (the last record of an epoch wins if it was logged twice). A torn or
    malformed line is a :class:`DataError` naming the file and line; an empty log is an empty dict."""
    path = Path(run_dir) / METRICS_LOG
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read ({e})") from None
    records: dict[int, dict[str, Any]] = {}
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            raise DataError(f"{path}:{lineno}: invalid JSON (a corrupt or torn line); repair or delete it") from None
        keys = [k for k in rec if k.startswith("valid_")] if isinstance(rec, dict) else []
        if not isinstance(rec, dict) or not isinstance(rec.get("epoch"), int) or not keys:
            raise DataError(f"{path}:{lineno}: expected an epoch record with `epoch` and `valid_<metric>`")
        records[int(rec["epoch"])] = rec
    return records


def _hardware(data: dict[str, Any]) -> str | None:
    code = data.get("code")
    value = code.get("hardware") if isinstance(code, dict) else None
    return value if isinstance(value, str) and value else None


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


def run_training_code(data: dict[str, Any]) -> dict[str, str | None]:
    """Each code version of :func:`run_versions` -> its training-code digest: the one recorded in ``code`` for the
    version that evaluated the run, else that of the label's commit in this checkout (``None`` for a dirty or
    commit-less version, or a commit this checkout does not have)."""
    from searnn.provenance import short_version, training_code_at

    recorded: dict[str, str] = {}
    code = data.get("code")
    if isinstance(code, dict) and isinstance(code.get("training_code"), str):
        recorded[short_version(code)] = code["training_code"]
    out: dict[str, str | None] = {}
    for label in run_versions(data):
        commit = label.split(" ", 1)[0]
        out[label] = recorded.get(label) or (None if "+" in commit else training_code_at(commit))
    return out


__all__ = [
    "METRICS_LOG", "RESULTS", "RUN_MARKER", "SPLITS", "TRAINING_DATA_KEYS", "RunResult", "epoch_records",
    "evaluation_data", "find_run_dirs", "is_run_results", "load_result", "natural_key", "read_marker", "row_label",
    "run_training_code", "run_versions", "select_split", "unfinished_runs",
]
