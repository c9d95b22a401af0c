"""Running the planned runs of a grid (:func:`searnn.grid.load_grid`) as local subprocesses.

:func:`launch` is the local launcher of ``searnn experiment`` (``--launcher local``, the default); the Ray
launcher (:mod:`searnn.ray_launcher`) shares its pieces: ``_prepare`` (a run's ``options.yaml`` and
``grid_run.json``), :data:`LOG_FILE`, :class:`Failure` and the one-line summaries of finished and failed runs.

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
"""

from __future__ import annotations

import contextlib
import json
import os
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
from searnn.errors import SearnnError
from searnn.fileio import atomic_write_text
from searnn.grid import Grid, PlannedRun, run_status, warm_start_producers

OPTIONS_FILE = "options.yaml"
LOG_FILE = "train.log"


def train_command(options_file: Path) -> list[str]:
    """The command line of one run (a fresh interpreter running ``searnn train``)."""
    return [sys.executable, "-m", "searnn.cli", "train", "--config", str(options_file)]


@dataclass
class Failure:
    """A run that did not finish: why (exit status and the last line of its log) and the log's path."""

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
    """The last non-blank line of a log (at most 300 characters); empty when there is none or it is unreadable."""
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


def _summary(run: PlannedRun) -> str:
    """``": valid cer 12.34, test cer 13.45"`` for a finished run; empty when its results are unreadable."""
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
    from searnn.runlock import holder_name

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
                    echo(f"waiting for {run.label}: {holder_name(holder)} (not started by this grid) is "
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
                    echo(f"waiting for {run.label}: {holder_name(holder)} (not started by this grid) took it "
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


def _next_ready(queue: list[PlannedRun], producers: dict[str, PlannedRun]) -> PlannedRun | None:
    """The first queued run whose warm-start producer (if any) is done; ``None`` when all wait for one."""
    for run in queue:
        producer = producers.get(run.label)
        if producer is None or producer.status == "done":
            queue.remove(run)
            return run
    return None


__all__ = ["LOG_FILE", "OPTIONS_FILE", "Failure", "launch", "train_command"]
