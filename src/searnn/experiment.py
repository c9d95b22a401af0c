"""``searnn experiment GRID.yaml``: run a grid of (row x seed) trainings and aggregate them into a table.

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

Running
-------

Run ``(row, seed)`` is an ordinary ``searnn train`` in its own run dir ``<out>/<row>/seed<seed>``, launched as
a subprocess ``python -m searnn.cli train --config <run dir>/options.yaml`` whose stdout and stderr go to
``<run dir>/train.log`` (appended, one header line per attempt). ``options.yaml`` holds the run's resolved
flat options; ``grid_run.json`` (grid name, row, seed) lets ``searnn report``/``searnn plot`` find the row.
``--jobs N`` runs N subprocesses at once.

* A run whose ``results.json`` exists and covers the requested epochs (or stopped early) is **skipped**.
* Any other run is (re)launched: ``searnn train`` resumes it from its ``last.pt`` when there is one, so a
  grid interrupted (Ctrl-C, SIGTERM, a crash, a reboot) finishes when the same command is run again, and
  gives the same numbers as an uninterrupted grid. Raising ``epochs`` extends finished runs.
* A run dir holding a run with a *different* configuration (the row's options were edited) is an error
  before anything is launched: rename the row or delete that directory.
* Failed runs are listed at the end with their log path, and the exit status is 1.
* Trainers die with the driver: on Linux each child gets SIGTERM (``PR_SET_PDEATHSIG``) when the driver dies,
  even by SIGKILL; it then saves ``last.pt`` and exits, as after Ctrl-C. A run dir locked by a live trainer
  that this driver did not start is waited for (one log line), then skipped if that trainer finished it, else
  resumed; it is never reported as failed for being busy.

``--launcher ray`` (with ``--ray-address``, ``--cpus-per-run``, ``--gpus-per-run``) submits the same commands
as Ray tasks instead, with the same skipping and resuming: see :mod:`searnn.ray_launcher`.

``--dry-run`` validates the grid and prints the plan (each run's status: done / resume / new) without
launching or writing anything.

Results
-------

At the end (also when some runs failed) the finished runs are aggregated, one line per row in grid order,
as in ``searnn report`` (see :mod:`searnn.report`): metric valid and test mean ± sample std over seeds, n,
best epoch, epochs, seconds per epoch, total training time. The table is printed and written to
``<out>/results.md``; the same numbers unrounded, with per-seed values, to ``<out>/results.json``. A copy of
the grid file is kept as ``<out>/grid.yaml``.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import yaml

from searnn import report
from searnn.children import die_with_parent, signal_handled
from searnn.cliparse import CliParser
from searnn.config import SECTIONS, RunConfig, build_config, read_text_file, read_yaml, yaml_error
from searnn.errors import ConfigError, DataError, SearnnError
from searnn.fileio import atomic_write_text

TOP_KEYS = ("name", "description", "out", "jobs", "seeds", "base", "runs")
ROW_KEYS = ("name", "seeds", "config")
SEED_FIELD = "{seed}"  # in a string option, replaced by the run's seed
RESERVED = {
    "run_dir": "the grid sets it to <out>/<row>/seed<k>",
    "seed": "list the seeds under `seeds:` (top level or in the row)",
}
GRID_DEFAULTS: dict[str, Any] = {"threads": 1, "progress": False}
OPTIONS_FILE = "options.yaml"
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
LOG_FILE = "train.log"
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
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}: `seeds` must be a non-empty list of integers, e.g. [1, 2, 3]; got {value!r}")
    for s in value:
        if isinstance(s, bool) or not isinstance(s, int):
            raise ConfigError(f"{where}: seed {s!r} is not an integer")
    if len(set(value)) != len(value):
        raise ConfigError(f"{where}: repeated seed in {value}")
    return list(value)


def _config_file(value: Any, base_dir: Path, where: str) -> dict[str, Any]:
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
    results_path = run.run_dir / report.RESULTS
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


# --------------------------------------------------------------------------------------------- running


def train_command(options_file: Path) -> list[str]:
    """The command line of one run (a fresh interpreter running ``searnn train``)."""
    return [sys.executable, "-m", "searnn.cli", "train", "--config", str(options_file)]


@dataclass
class Failure:
    run: PlannedRun
    reason: str
    log: Path


def _prepare(grid: Grid, run: PlannedRun) -> Path:
    """Write the run's ``options.yaml`` and ``grid_run.json``; returns the options file."""
    try:
        run.run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SearnnError(f"cannot create the run directory {run.run_dir} ({e.strerror or e})") from None
    options_file = run.run_dir / OPTIONS_FILE
    atomic_write_text(yaml.safe_dump(run.options, sort_keys=False), options_file)
    marker = {"grid": grid.name, "grid_file": str(grid.path), "row": run.row, "seed": run.seed}
    atomic_write_text(json.dumps(marker, indent=2) + "\n", run.run_dir / report.RUN_MARKER)
    return options_file


def _last_line(log: Path) -> str:
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


def _summary(run: PlannedRun) -> str:
    try:
        r = report.load_result(run.run_dir)
    except SearnnError:
        return ""
    if r.valid is None or r.test is None:
        return ""
    return f": valid {r.metric} {r.valid:.2f}, test {r.metric} {r.test:.2f}"


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Inside the block SIGTERM raises KeyboardInterrupt, so that running children are stopped cleanly."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    with signal_handled(signal.SIGTERM, handler):
        yield


def _stop(procs: list[subprocess.Popen], grace: float = 20.0) -> None:
    """Ask running children to stop, then kill those still running.

    The request is SIGTERM, which ``searnn train`` handles exactly as Ctrl-C (it saves ``last.pt``). Not
    SIGINT: a grid started in the background of a non-interactive shell (``nohup ... &``) hands SIGINT down as
    ignored, and its trainers would be killed after the grace period instead of checkpointing."""
    for p in procs:
        with contextlib.suppress(OSError):
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for p in procs:
        try:
            p.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def launch(
    grid: Grid,
    jobs: int,
    command: Callable[[Path], list[str]] | None = None,
    echo: Callable[[str], None] = print,
    poll_seconds: float = 0.2,
) -> list[Failure]:
    """Run every planned run that is not done, ``jobs`` at a time; returns the failures.

    ``command(options_file)`` gives a run's command line (default :func:`train_command`). Children die with
    this process (:func:`searnn.children.die_with_parent`: SIGTERM when the driver dies, even by SIGKILL), and
    Ctrl-C / SIGTERM of the driver stops them cleanly (:func:`_stop`). A run whose directory is locked by a
    live trainer this grid did not start (say, one left by a driver killed on a platform without
    ``PR_SET_PDEATHSIG``) is not failed: it waits, with a log line, until that trainer ends, then is skipped
    if that trainer finished it, else resumed.
    """
    from searnn.checkpoint import LOCK, lock_holder

    command = command or train_command
    preexec = die_with_parent()
    todo = [r for r in grid.runs if r.status != "done"]
    done = len(grid.runs) - len(todo)
    if done:
        echo(f"{done} of {len(grid.runs)} runs already finished (skipped)")
    failures: list[Failure] = []
    active: dict[subprocess.Popen, tuple[PlannedRun, float, IO[str]]] = {}
    queue = list(todo)
    waiting: list[PlannedRun] = []  # locked by a trainer that this grid did not start
    finished = 0
    env = dict(os.environ)
    producers = {label: p for label, p in warm_start_producers(grid).items() if p.status != "done"}
    try:
        while queue or active or waiting:
            for run in [r for r in queue if r.label in producers]:  # its warm start failed: it cannot start
                producer = producers[run.label]
                if any(f.run is producer for f in failures):
                    queue.remove(run)
                    failures.append(Failure(run, f"not started: its warm start {producer.label} failed",
                                            run.run_dir / LOG_FILE))
                    echo(f"FAILED {run.label} (not started: its warm start {producer.label} failed)")
            while len(active) < jobs:
                run = _next_ready(queue, producers)
                if run is None:
                    break
                holder = lock_holder(run.run_dir)
                if holder is not None:
                    waiting.append(run)
                    echo(f"waiting for {run.label}: process {holder or '?'} (not started by this grid) is "
                         f"training it (lock {run.run_dir / LOCK}); it is taken up again when that process ends")
                    continue
                options_file = _prepare(grid, run)
                log_path = run.run_dir / LOG_FILE
                log = log_path.open("a")
                stamp = time.strftime("%Y-%m-%d %H:%M:%S")
                log.write(f"=== searnn experiment {grid.name}: {run.label} ({run.status}) at {stamp} ===\n")
                log.flush()
                threads = str(run.config.train.threads)
                child_env = {**env, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
                proc = subprocess.Popen(command(options_file), stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, env=child_env, start_new_session=True,
                                        preexec_fn=preexec)
                active[proc] = (run, time.monotonic(), log)
                verb = "resuming" if run.status == "resume" else "starting"
                echo(f"[{done + finished + len(active)}/{len(grid.runs)}] {verb} {run.label}  (log: {log_path})")
            time.sleep(poll_seconds)
            for run in [r for r in waiting if lock_holder(r.run_dir) is None]:
                waiting.remove(run)
                run.status = run_status(run)
                if run.status == "done":
                    finished += 1
                    echo(f"finished {run.label} (by the other process){_summary(run)}")
                else:
                    echo(f"{run.label} is free again: resuming it")
                    queue.insert(0, run)
            for proc in [p for p in active if p.poll() is not None]:
                run, start, log = active.pop(proc)
                log.close()
                holder = lock_holder(run.run_dir) if proc.returncode != 0 else None
                if holder is not None:  # another grid's trainer took the run between our check and the start
                    waiting.append(run)
                    echo(f"waiting for {run.label}: process {holder or '?'} (not started by this grid) took it "
                         "as this grid started it; it is taken up again when that process ends")
                    continue
                finished += 1
                seconds = time.monotonic() - start
                log_path = run.run_dir / LOG_FILE
                if proc.returncode == 0 and (run.run_dir / report.RESULTS).exists():
                    run.status = "done"
                    echo(f"finished {run.label} in {report.format_seconds(seconds)}{_summary(run)}")
                else:
                    reason = f"exit status {proc.returncode}"
                    if proc.returncode == 0:
                        reason = f"exited without writing {report.RESULTS}"
                    last = _last_line(log_path)
                    failures.append(Failure(run, f"{reason}: {last}" if last else reason, log_path))
                    echo(f"FAILED {run.label} ({reason}); log: {log_path}")
    except BaseException as e:  # Ctrl-C, SIGTERM, or an error of ours: never leave children running
        if isinstance(e, KeyboardInterrupt):
            echo(f"interrupted: stopping {len(active)} running run(s)...")
        _stop(list(active))
        for _, _, log in active.values():
            log.close()
        raise
    return failures


# --------------------------------------------------------------------------------------------- results


def collect(grid: Grid) -> list[report.Group]:
    """The grid's table lines: one per row (grid order), over the seeds that finished."""
    groups: list[report.Group] = []
    for row in grid.rows:
        runs: list[report.RunResult] = []
        for planned in grid.runs:
            if planned.row == row and (planned.run_dir / report.RESULTS).exists():
                try:
                    runs.append(report.load_result(planned.run_dir))
                except DataError as e:  # a corrupt results.json: left out of the table (rerun to rewrite it)
                    print(f"warning: {e}; {planned.label} left out (run the grid again to rewrite it)",
                          file=sys.stderr)
        for r in runs:
            r.row = row
        found = report.group_runs(runs, "row") if runs else []
        if not found:
            cfg = next(r.config for r in grid.runs if r.row == row)
            found = [report.Group(row, cfg.train.task, cfg.train.objective, "—", False)]
        for g in found:
            g.expected = len(grid.seeds[row])
        groups.extend(found)
    return groups


def write_results(grid: Grid, failures: list[Failure]) -> str:
    """Write ``results.md`` / ``results.json`` in the grid's out dir; returns the markdown text."""
    groups = collect(grid)
    table = report.markdown_table(groups, "row")
    title = f"# {grid.name}\n\n" + (f"{grid.description.strip()}\n\n" if grid.description.strip() else "")
    text = f"{title}{table}\n\n{report.TABLE_NOTE}\n\n{report.versions_note(groups)}\n"
    missing = [r for r in grid.runs if not (r.run_dir / report.RESULTS).exists()]
    if missing:
        text += f"\nMissing ({len(missing)}): " + ", ".join(r.label for r in missing) + "\n"
    grid.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(text, grid.out / "results.md")
    data = report.report_json(
        groups, "row", name=grid.name, grid_file=str(grid.path), out=str(grid.out),
        missing=[str(r.run_dir) for r in missing],
        failed=[{"run_dir": str(f.run.run_dir), "reason": f.reason, "log": str(f.log)} for f in failures],
    )
    atomic_write_text(json.dumps(data, indent=2, default=str) + "\n", grid.out / "results.json")
    return text


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


def _next_ready(queue: list[PlannedRun], producers: dict[str, PlannedRun]) -> PlannedRun | None:
    """The first queued run whose warm-start producer (if any) is done; ``None`` when all wait for one."""
    for run in queue:
        producer = producers.get(run.label)
        if producer is None or producer.status == "done":
            queue.remove(run)
            return run
    return None


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


def print_plan(grid: Grid) -> None:
    counts = {s: sum(r.status == s for r in grid.runs) for s in ("done", "resume", "new")}
    print(f"grid {grid.name} ({grid.path}): {len(grid.rows)} rows, {len(grid.runs)} runs "
          f"({counts['done']} done, {counts['resume']} to resume, {counts['new']} new), out {grid.out}")
    from searnn.checkpoint import lock_holder

    width = max(len(r.label) for r in grid.runs)
    notes, missing = warm_start_notes(grid)
    for r in grid.runs:
        note = f"  ({notes[r.label]})" if r.label in notes else ""
        holder = lock_holder(r.run_dir) if r.status != "done" else None
        busy = f"  (being trained by process {holder or '?'}: waited for)" if holder is not None else ""
        print(f"  {r.label:{width}s}  {r.status:6s}  {r.run_dir}{note}{busy}")
    for problem in missing:
        print(f"  problem: {problem}")
    todo = [r for r in grid.runs if r.status != "done"]
    if todo:
        example = todo[0]
        print(f"each run: {' '.join(train_command(example.run_dir / OPTIONS_FILE))}  with options "
              f"(first one) {json.dumps(example.options, default=str)}")


def main(argv: list[str]) -> int:
    parser = CliParser(
        prog="searnn experiment",
        description="Train a grid of (row x seed) runs, each an ordinary `searnn train` in <out>/<row>/seed<k>, "
        "skipping finished ones and resuming interrupted ones; then print and write the results table "
        "(<out>/results.md, <out>/results.json).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=GRID_EXAMPLE,
    )
    parser.add_argument("grid", metavar="GRID.yaml", help="grid file")
    parser.add_argument("--jobs", "-j", type=int, default=None, help="runs at once (default: the grid's jobs, or 1)")
    parser.add_argument("--dry-run", action="store_true", help="validate and print the plan; launch nothing")
    parser.add_argument("--out", default=None, help="root directory of the runs (default: the grid's out)")
    parser.add_argument("--launcher", choices=["local", "ray"], default="local",
                        help="local: subprocesses on this machine (default); ray: one task per run on a Ray "
                        "cluster (see searnn.ray_launcher; run dirs on a file system every node sees)")
    parser.add_argument("--ray-address", default=None, help="Ray cluster to join (default: RAY_ADDRESS or local)")
    parser.add_argument("--cpus-per-run", type=float, default=None, help="Ray CPUs per run (default 1)")
    parser.add_argument("--gpus-per-run", type=float, default=None, help="Ray GPUs per run (default 0)")
    args = parser.parse_args(argv)
    if args.launcher != "ray":
        for name in ("ray_address", "cpus_per_run", "gpus_per_run"):
            if getattr(args, name) is not None:
                raise ConfigError(f"--{name.replace('_', '-')} needs --launcher ray")
    cpus = 1.0 if args.cpus_per_run is None else args.cpus_per_run
    gpus = 0.0 if args.gpus_per_run is None else args.gpus_per_run
    if args.launcher == "ray":
        from searnn.ray_launcher import check_resources

        check_resources(cpus, gpus)
    if args.jobs is not None and args.jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {args.jobs}")
    grid = load_grid(args.grid, out=args.out, jobs=args.jobs)
    if args.dry_run:
        print_plan(grid)
        return 1 if warm_start_notes(grid)[1] else 0
    missing = warm_start_notes(grid)[1]
    if missing:
        raise ConfigError(missing[0] + (f" (and {len(missing) - 1} more runs)" if len(missing) > 1 else ""))
    try:
        grid.out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SearnnError(f"cannot create the grid's out directory {grid.out} ({e.strerror or e}); use --out") from None
    atomic_write_text(grid.text, grid.out / "grid.yaml")
    with _sigterm_as_interrupt():
        if args.launcher == "ray":
            from searnn.ray_launcher import launch_ray

            failures = launch_ray(grid, address=args.ray_address, cpus_per_run=cpus, gpus_per_run=gpus)
        else:
            failures = launch(grid, grid.jobs)
    print()
    print(write_results(grid, failures))
    print(f"(written to {grid.out / 'results.md'} and {grid.out / 'results.json'})")
    if failures:
        print(f"{len(failures)} of {len(grid.runs)} runs failed:", file=sys.stderr)
        for f in failures:
            print(f"  {f.run.label}: {f.reason}\n    log: {f.log}", file=sys.stderr)
        print("fix the cause and run the same command again (finished runs are skipped)", file=sys.stderr)
        return 1
    return 0


__all__ = ["Grid", "PlannedRun", "collect", "launch", "load_grid", "main", "run_status", "write_results"]
