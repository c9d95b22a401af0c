"""The grid file of ``searnn experiment``: parse and validate it, and plan its (row x seed) runs.

:func:`load_grid` reads a grid file into a :class:`Grid` whose :class:`PlannedRun` entries carry each run's
resolved options, its validated :class:`~searnn.config.RunConfig` and its status (:func:`run_status`: done /
resume / new, from what its run dir already holds). Nothing is launched or written here: running the plan is
:mod:`searnn.launch` (local subprocesses) or :mod:`searnn.ray_launcher`, the results table is
:mod:`searnn.experiment`.

Grid file
---------

A YAML mapping with these top-level keys (any other key is an error)::

    name: ocr_table1            # required; names the default output directory
    description: "..."          # optional; printed above the table
    out: runs/ocr_table1        # optional; root of the run dirs (default runs/<name>; --out overrides)
    jobs: 2                     # optional; runs at once (default 1; --jobs overrides)
    seeds: [1, 2, 3]            # seeds of every row (default [1]); a row may list its own
    base:                       # options shared by every run: the flat keys of `searnn train`
      task: ocr                 #   (dashes or underscores; the sections train/task/model/objective
      epochs: 40                #    may also be given as nested mappings, as in a --config file)
      config: ../ocr/base.yaml  #   optional: a `searnn train --config` file, read first
    runs:                       # required, non-empty: one table row each
      - name: mle               #   required, unique; letters, digits and . _ + = - only
        objective: mle          #   options overriding base
      - name: mle-lr3e-3
        lr: 0.003
        seeds: [1, 2]           #   optional: this row's seeds instead of the top-level ones
        config: ../ocr/kl.yaml  #   optional: a config file, read after base and before the row's options

The options of one run are, from lowest to highest priority: ``threads: 1`` and ``progress: false``
(grid defaults: N single-threaded runs use N cores; change them in ``base``), ``base.config``, ``base``,
the row's ``config``, the row's options. ``run_dir`` and ``seed`` are set by the grid and may not be given.
``{seed}`` in a string option is replaced by the run's seed, e.g. ``warm_start: runs/base/mle/seed{seed}``
starts seed k from the checkpoint of seed k of another grid.
``config:`` paths are relative to the grid file; every other path (``out``, ``data_dir``, ...) is taken as
``searnn train`` would take it, relative to the working directory.

Every run's options are validated with :func:`searnn.config.build_config` before anything is launched: a
mistyped option gives the error ``searnn train`` would give, naming the grid file, the row and its line.

Warm starts between rows
------------------------

A run whose ``warm_start`` is the run dir (or its ``best.pt``) of another run of the same grid depends on it
(:func:`warm_start_producers`); :func:`warm_start_notes` tells such runs apart from warm starts that exist
nowhere (an error before launching).
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from searnn import run_results
from searnn.config import SECTIONS, RunConfig, build_config, read_text_file, read_yaml, yaml_error
from searnn.errors import ConfigError, SearnnError

TOP_KEYS = ("name", "description", "out", "jobs", "seeds", "base", "runs")
ROW_KEYS = ("name", "seeds", "config")
SEED_FIELD = "{seed}"  # in a string option, replaced by the run's seed
RESERVED = {
    "run_dir": "the grid sets it to <out>/<row>/seed<k>",
    "seed": "list the seeds under `seeds:` (top level or in the row)",
}
GRID_DEFAULTS: dict[str, Any] = {"threads": 1, "progress": False}
GRID_EXAMPLE = """grid file (YAML; details: README.md, section Experiments):
  name: ocr_table            # required; default out: runs/<name>
  out: runs/ocr_table        # optional; --out overrides
  jobs: 2                    # optional; --jobs overrides
  seeds: [1, 2, 3]           # default [1]
  base: {task: ocr, epochs: 40}        # options of `searnn train` shared by all runs (+ config: FILE)
  runs:                                # one table row each
    - {name: mle, objective: mle}
    - {name: mle-lr3e-3, lr: 0.003, seeds: [1, 2]}
"""
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=-]*$")


@dataclass
class PlannedRun:
    """One (row, seed) of the grid. ``status``: ``done`` (results cover the request), ``resume`` (started
    before: ``searnn train`` goes on from ``last.pt``) or ``new``."""

    row: str
    seed: int
    run_dir: Path
    options: dict[str, Any]
    config: RunConfig
    status: str = "new"

    @property
    def label(self) -> str:
        return f"{self.row}/seed{self.seed}"


@dataclass
class Grid:
    """A validated grid: its rows in file order and every planned run."""

    name: str
    path: Path
    text: str
    description: str
    out: Path
    jobs: int
    rows: list[str]
    seeds: dict[str, list[int]]
    runs: list[PlannedRun]


# --------------------------------------------------------------------------------------------- loading


def _lines(text: str) -> tuple[dict[str, int], list[int]]:
    """1-based line numbers of the top-level keys and of the ``runs`` entries (for error messages)."""
    keys: dict[str, int] = {}
    rows: list[int] = []
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return keys, rows
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            keys[str(k.value)] = k.start_mark.line + 1
            if k.value == "runs" and isinstance(v, yaml.SequenceNode):
                rows = [item.start_mark.line + 1 for item in v.value]
    return keys, rows


def _flat_sections(values: dict[str, Any]) -> dict[str, Any]:
    """Options mapping -> flat ``{key: value}`` (sections flattened, dashes -> underscores)."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        key = str(key).replace("-", "_")
        if key in SECTIONS and isinstance(value, dict):
            flat.update(_flat_sections(value))
        else:
            flat[key] = value
    return flat


def _flatten(values: dict[str, Any], where: str) -> dict[str, Any]:
    """Grid options -> flat options; the keys the grid sets itself are refused."""
    flat = _flat_sections(values)
    for key, why in RESERVED.items():
        if key in flat:
            raise ConfigError(f"{where}: option {key!r} cannot be set in a grid ({why})")
    return flat


def _seeds(value: Any, where: str) -> list[int]:
    """A ``seeds:`` value checked: a non-empty list of distinct integers (``where`` prefixes the errors)."""
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}: `seeds` must be a non-empty list of integers, e.g. [1, 2, 3]; got {value!r}")
    for s in value:
        if isinstance(s, bool) or not isinstance(s, int):
            raise ConfigError(f"{where}: seed {s!r} is not an integer")
    if len(set(value)) != len(value):
        raise ConfigError(f"{where}: repeated seed in {value}")
    return list(value)


def _config_file(value: Any, base_dir: Path, where: str) -> dict[str, Any]:
    """The flat options of a ``config:`` file (a path relative to ``base_dir``, the grid file's folder)."""
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: `config` must be the path of a YAML config file, got {value!r}")
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = base_dir / path
    try:
        return _flatten(read_yaml(path), f"{where} (config {path})")
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None


def _unknown(kind: str, key: str, valid: tuple[str, ...], where: str) -> ConfigError:
    """The error for an unknown key: the closest valid keys as a hint, else the list of valid ones."""
    close = difflib.get_close_matches(key, valid, n=2, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}?" if close else f"valid: {', '.join(valid)}"
    return ConfigError(f"{where}: unknown {kind} {key!r}; {hint}")


def load_grid(path: str | Path, out: str | None = None, jobs: int | None = None) -> Grid:
    """Read and validate a grid file; build and check every run's config (nothing is launched)."""
    path = Path(path)
    text = read_text_file(path, "grid file")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(yaml_error(path, e)) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with the keys {', '.join(TOP_KEYS)}")
    key_lines, row_lines = _lines(text)

    def at(key: str) -> str:
        return f"{path}:{key_lines[key]}" if key in key_lines else str(path)

    for key in data:
        if key not in TOP_KEYS:
            raise _unknown("top-level key", str(key), TOP_KEYS, at(str(key)))
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{path}: missing `name:` (a name for the grid, e.g. name: ocr_table1)")
    if not _SAFE_NAME.match(name):
        raise ConfigError(f"{at('name')}: grid name {name!r} may hold only letters, digits and . _ + = -")
    description = data.get("description") or ""
    out_value = out if out is not None else data.get("out", f"runs/{name}")
    if not isinstance(out_value, str) or not out_value:
        raise ConfigError(f"{at('out')}: `out` must be a directory path, got {out_value!r}")
    n_jobs = jobs if jobs is not None else data.get("jobs", 1)
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs < 1:
        raise ConfigError(f"{at('jobs')}: jobs must be an integer >= 1, got {n_jobs!r}")
    top_seeds = _seeds(data["seeds"], at("seeds")) if "seeds" in data else [1]

    base_raw = data.get("base") or {}
    if not isinstance(base_raw, dict):
        raise ConfigError(f"{at('base')}: `base` must be a mapping of options")
    base_raw = dict(base_raw)
    base: dict[str, Any] = {}
    if "config" in base_raw:
        base.update(_config_file(base_raw.pop("config"), path.parent, f"{at('base')}: base"))
    base.update(_flatten(base_raw, f"{at('base')}: base"))

    entries = data.get("runs")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{at('runs')}: `runs` must be a non-empty list of rows (each with a `name`)")
    out_dir = Path(out_value).expanduser()
    rows: list[str] = []
    seeds: dict[str, list[int]] = {}
    runs: list[PlannedRun] = []
    for i, entry in enumerate(entries):
        where = f"{path}:{row_lines[i]}" if i < len(row_lines) else f"{path}: runs[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: runs[{i}] must be a mapping with a `name` and options, got {entry!r}")
        entry = dict(entry)
        row = entry.pop("name", None)
        if not isinstance(row, str) or not row:
            raise ConfigError(f"{where}: runs[{i}] has no `name` (the row label, also its directory name)")
        if not _SAFE_NAME.match(row):
            raise ConfigError(f"{where}: row name {row!r} may hold only letters, digits and . _ + = -")
        if row in seeds:
            raise ConfigError(f"{where}: two rows are named {row!r}")
        where = f"{where}: row {row!r}"
        row_seeds = _seeds(entry.pop("seeds"), where) if "seeds" in entry else top_seeds
        options = dict(GRID_DEFAULTS)
        options.update(base)
        if "config" in entry:
            options.update(_config_file(entry.pop("config"), path.parent, where))
        options.update(_flatten(entry, where))
        rows.append(row)
        seeds[row] = row_seeds
        for seed in row_seeds:
            run_dir = out_dir / row / f"seed{seed}"
            values = {**_with_seed(options, seed), "run_dir": str(run_dir), "seed": seed}
            try:
                cfg = build_config(values)
            except ConfigError as e:
                raise ConfigError(f"{where}: {e}") from None
            runs.append(PlannedRun(row, seed, run_dir, values, cfg))
    for run in runs:
        run.status = run_status(run)
    return Grid(name, path, text, str(description), out_dir, n_jobs, rows, seeds, runs)


def _with_seed(options: dict[str, Any], seed: int) -> dict[str, Any]:
    """``options`` with ``{seed}`` in every string value replaced by the run's seed (e.g. a per-seed warm start)."""
    return {k: v.replace(SEED_FIELD, str(seed)) if isinstance(v, str) else v for k, v in options.items()}


def run_status(run: PlannedRun) -> str:
    """``done`` / ``resume`` / ``new``; raises ConfigError when the run dir holds another configuration.

    A run is done when its ``results.json`` covers the requested epochs (or says it stopped early). The saved
    configuration (``config.yaml``, else the ``config`` of ``results.json``) must equal the planned one up to
    the options a resumed run may change (:data:`searnn.checkpoint.RESUMABLE_CHANGES`).
    """
    from searnn.checkpoint import config_differences, has_requested_beam_test, load_saved_config

    cfg_path = run.run_dir / "config.yaml"
    results_path = run.run_dir / run_results.RESULTS
    results: dict[str, Any] | None = None
    if results_path.exists():
        try:
            loaded = json.loads(results_path.read_text())
            results = loaded if isinstance(loaded, dict) else None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            results = None
    saved: RunConfig | None = None
    try:
        if cfg_path.exists():
            saved = load_saved_config(run.run_dir)
        elif results is not None and isinstance(results.get("config"), dict):
            saved = build_config(_flat_sections(results["config"]))
    except SearnnError as e:
        raise ConfigError(f"{run.run_dir}: cannot read its saved config ({e}); delete that directory") from None
    if saved is not None:
        diffs = config_differences(saved, run.config)
        if diffs:
            raise ConfigError(
                f"{run.run_dir} (row {run.row!r}, seed {run.seed}) holds a run with a different config "
                f"({'; '.join(diffs)}); rename the row or delete that directory"
            )
    if results is not None and (results.get("stopped") or int(results.get("epochs") or 0) >= run.config.train.epochs):
        # a grid that adds --test-beam to finished runs resumes them (final evaluation only)
        return "done" if has_requested_beam_test(run.config, results) else "resume"
    return "resume" if cfg_path.exists() else "new"


# --------------------------------------------------------------------------------------------- warm starts


def warm_start_producers(grid: Grid) -> dict[str, PlannedRun]:
    """``{label: producer}`` for every run whose ``warm_start`` is the run directory (or its ``best.pt``) of
    another run of this grid: the launcher starts it only once its producer has finished."""
    from searnn.checkpoint import BEST

    produced = {r.run_dir.resolve(): r for r in grid.runs}
    found: dict[str, PlannedRun] = {}
    for run in grid.runs:
        source = run.config.train.warm_start
        if not source:
            continue
        target = Path(source).expanduser().resolve()
        producer = produced.get(target) or (produced.get(target.parent) if target.name == BEST else None)
        if producer is not None and producer is not run:
            found[run.label] = producer
    return found


def warm_start_notes(grid: Grid) -> tuple[dict[str, str], list[str]]:
    """Check every run's ``warm_start`` (after ``{seed}`` substitution, relative to the working directory).

    Returns ``(notes, missing)``: ``notes[label]`` says where the checkpoint comes from when another run of
    this grid will produce it (``will exist after row X, seed K``); ``missing`` lists one message per run
    whose warm start neither exists nor is produced by the grid."""
    from searnn.checkpoint import BEST

    producers = warm_start_producers(grid)
    notes: dict[str, str] = {}
    missing: list[str] = []
    for run in grid.runs:
        source = run.config.train.warm_start
        if not source or run.status != "new":
            continue
        path = Path(source).expanduser()
        if (path / BEST if path.is_dir() else path).is_file():
            continue
        producer = producers.get(run.label)
        if producer is not None:
            notes[run.label] = f"warm start {source} will exist after row {producer.row!r}, seed {producer.seed}"
        else:
            missing.append(f"{grid.path}: row {run.row!r}, seed {run.seed}: warm_start {source!r} does not exist "
                           f"(no {BEST} there, and no run of this grid writes it)")
    return notes, missing


__all__ = ["GRID_EXAMPLE", "Grid", "PlannedRun", "load_grid", "run_status", "warm_start_notes",
           "warm_start_producers"]
