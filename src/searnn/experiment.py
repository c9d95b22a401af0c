"""``searnn experiment GRID.yaml``: run a grid of (row x seed) trainings and aggregate them into a table.

This module holds the command (:func:`main`, :func:`print_plan` for ``--dry-run``) and the results table
(:func:`collect`, :func:`write_results`). The grid file format, its validation and the plan of runs are
:mod:`searnn.grid`; running the plan as local subprocesses is :mod:`searnn.launch` (on a Ray cluster:
:mod:`searnn.ray_launcher`). The names of those modules that callers used to import from here
(``load_grid``, ``launch``, ``Failure``, ...) are re-exported.

``--dry-run`` validates the grid and prints the plan (each run's status: done / resume / new) without
launching or writing anything.

``--only ROW[/seedK],...`` launches only the named runs, in the order given (a row alone names all its seeds);
the table still covers every finished run of the grid. ``--archive DIR`` launches nothing: it copies the
records of the finished runs, without checkpoints, to ``DIR`` (:mod:`searnn.archive`).

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
import dataclasses
import json
import sys

from searnn import report
from searnn.cliparse import CliParser
from searnn.errors import ConfigError, DataError, SearnnError
from searnn.fileio import atomic_write_text
from searnn.grid import (
    GRID_DEFAULTS,
    GRID_EXAMPLE,
    RESERVED,
    ROW_KEYS,
    SEED_FIELD,
    TOP_KEYS,
    Grid,
    PlannedRun,
    load_grid,
    run_status,
    warm_start_notes,
    warm_start_producers,
)
from searnn.launch import LOG_FILE, OPTIONS_FILE, Failure, _sigterm_as_interrupt, launch, train_command

# private helpers of the launcher that other modules took from here before the split (kept importable)
from searnn.launch import _last_line as _last_line
from searnn.launch import _prepare as _prepare
from searnn.launch import _summary as _summary

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


# --------------------------------------------------------------------------------------------- command


def select_runs(grid: Grid, only: str) -> Grid:
    """The grid restricted to the runs ``--only`` names (``row`` or ``row/seedK``, comma-separated), in that
    order, each once. An unknown row or seed is an error listing the valid ones, and so is a run whose
    warm-start producer (another run of the grid) is neither finished nor named."""
    by_label = {r.label: r for r in grid.runs}
    chosen: list[PlannedRun] = []
    for item in (part.strip() for part in only.split(",")):
        if not item:
            continue
        row, _, seed = item.partition("/")
        if row not in grid.seeds:
            raise ConfigError(f"--only: no row {row!r} in {grid.path} (rows: {', '.join(grid.rows)})")
        if not seed:
            labels = [f"{row}/seed{s}" for s in grid.seeds[row]]
        else:
            label = f"{row}/{seed}" if seed.startswith("seed") else f"{row}/seed{seed}"
            if label not in by_label:
                valid = ", ".join(f"seed{s}" for s in grid.seeds[row])
                raise ConfigError(f"--only: row {row!r} has no {seed!r} (its seeds: {valid})")
            labels = [label]
        chosen.extend(by_label[label] for label in labels if by_label[label] not in chosen)
    if not chosen:
        raise ConfigError("--only names no run")
    producers = warm_start_producers(grid)
    for run in chosen:
        producer = producers.get(run.label)
        if run.status == "new" and producer is not None and producer.status != "done" and producer not in chosen:
            raise ConfigError(f"--only: {run.label} warm-starts from {producer.label}, which has not finished; "
                              f"name it too (before {run.label})")
    return dataclasses.replace(grid, runs=chosen)


def print_plan(grid: Grid) -> None:
    """``--dry-run``: every run with its status and run dir, warm-start notes and problems, one run's command."""
    counts = {s: sum(r.status == s for r in grid.runs) for s in ("done", "resume", "new")}
    print(f"grid {grid.name} ({grid.path}): {len(grid.rows)} rows, {len(grid.runs)} runs "
          f"({counts['done']} done, {counts['resume']} to resume, {counts['new']} new), out {grid.out}")
    from searnn.checkpoint import lock_holder
    from searnn.runlock import holder_name

    width = max(len(r.label) for r in grid.runs)
    notes, missing = warm_start_notes(grid)
    for r in grid.runs:
        note = f"  ({notes[r.label]})" if r.label in notes else ""
        holder = lock_holder(r.run_dir) if r.status != "done" else None
        busy = f"  (being trained by {holder_name(holder)}: waited for)" if holder is not None else ""
        print(f"  {r.label:{width}s}  {r.status:6s}  {r.run_dir}{note}{busy}")
    for problem in missing:
        print(f"  problem: {problem}")
    todo = [r for r in grid.runs if r.status != "done"]
    if todo:
        example = todo[0]
        print(f"each run: {' '.join(train_command(example.run_dir / OPTIONS_FILE))}  with options "
              f"(first one) {json.dumps(example.options, default=str)}")


def main(argv: list[str]) -> int:
    """``searnn experiment``: plan, launch (local or Ray), write and print the table.

    Returns 1 when a run failed (with ``--dry-run``: when a warm start is missing), else 0."""
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
    parser.add_argument("--only", default=None, metavar="ROW[/seedK],...",
                        help="launch only these runs, in this order (a row alone: all its seeds); the table "
                        "still covers every finished run")
    parser.add_argument("--archive", default=None, metavar="DIR",
                        help="launch nothing: copy the finished runs' records (results, curves, test "
                        "decodings, logs; no checkpoints) to DIR/<row>/seed<k>, which searnn report reads and "
                        "which, copied back under the out dir, counts as done (see searnn.archive)")
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
    if args.archive is not None:
        if args.dry_run or args.only is not None:
            raise ConfigError("--archive launches nothing: it goes without --dry-run and --only")
        from searnn.archive import archive_grid, describe

        print(describe(archive_grid(grid, args.archive), args.archive))
        return 0
    planned = grid if args.only is None else select_runs(grid, args.only)
    if args.dry_run:
        print_plan(planned)
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

            failures = launch_ray(planned, address=args.ray_address, cpus_per_run=cpus, gpus_per_run=gpus)
        else:
            failures = launch(planned, grid.jobs)
    print()
    print(write_results(grid, failures))
    print(f"(written to {grid.out / 'results.md'} and {grid.out / 'results.json'})")
    if failures:
        print(f"{len(failures)} of {len(planned.runs)} runs failed:", file=sys.stderr)
        for f in failures:
            print(f"  {f.run.label}: {f.reason}\n    log: {f.log}", file=sys.stderr)
        print("fix the cause and run the same command again (finished runs are skipped)", file=sys.stderr)
        return 1
    return 0


__all__ = [
    "GRID_DEFAULTS", "GRID_EXAMPLE", "LOG_FILE", "OPTIONS_FILE", "RESERVED", "ROW_KEYS", "SEED_FIELD", "TOP_KEYS",
    "Failure", "Grid", "PlannedRun", "collect", "launch", "load_grid", "main", "print_plan", "run_status",
    "select_runs", "train_command", "warm_start_notes", "warm_start_producers", "write_results",
]
