"""``searnn experiment GRID.yaml --launcher ray``: every (row, seed) of a grid as a task of a Ray cluster.

The driver (the machine where ``searnn experiment`` runs) plans the grid exactly as the local launcher does
(:func:`searnn.grid.load_grid`: finished runs are skipped, the others resume from ``last.pt``), writes
each run's ``options.yaml``, and submits one Ray task per run that is not done, asking for
``--cpus-per-run`` CPUs and ``--gpus-per-run`` GPUs. The task runs the same command as the local launcher,
``python -m searnn.cli train --config <run dir>/options.yaml``, on whichever node Ray picks, appending to
``<run dir>/train.log``. Run directories must therefore lie on a file system that every node sees (NFS, a
shared volume), mounted at the same path, with the same Python environment on every node.

Clean-up: a trainer dies with the Ray worker that started it (``PR_SET_PDEATHSIG``, as for the local
launcher), and Ray kills a driver's workers when the driver goes (even after SIGKILL). Ctrl-C or SIGTERM of
the driver cancels the tasks: each one forwards SIGTERM to its trainer (which saves ``last.pt``), and tasks
still running after a grace period are force-cancelled.

Ray is an optional dependency (``pip install searnn[ray]``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from searnn import report
from searnn.errors import ConfigError, SearnnError

GRACE_SECONDS = 20.0


def import_ray() -> Any:
    """The ``ray`` module, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise SearnnError("--launcher ray needs Ray: pip install 'searnn[ray]' (or pip install ray)") from None
    return ray


def check_resources(cpus: float, gpus: float) -> None:
    if not cpus > 0:
        raise ConfigError(f"--cpus-per-run must be > 0, got {cpus:g}")
    if gpus < 0:
        raise ConfigError(f"--gpus-per-run must be >= 0, got {gpus:g}")


def run_trainer(options_file: str, log_path: str, header: str, threads: int) -> int:
    """The body of one Ray task: run ``searnn train --config OPTIONS`` into its log; returns its exit status.

    The trainer gets SIGTERM when this worker dies (:func:`searnn.children.die_with_parent`); a cancelled
    task (KeyboardInterrupt inside the worker) stops the trainer with SIGTERM first (handled as Ctrl-C: it saves
    ``last.pt``; SIGINT may be inherited as ignored)."""
    from searnn.children import die_with_parent

    cmd = [sys.executable, "-m", "searnn.cli", "train", "--config", options_file]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    with open(log_path, "a") as log:
        log.write(header + "\n")
        log.flush()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True, preexec_fn=die_with_parent())
        try:
            return proc.wait()
        except BaseException:
            with contextlib.suppress(OSError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            raise


def launch_ray(
    grid: Any,
    address: str | None = None,
    cpus_per_run: float = 1.0,
    gpus_per_run: float = 0.0,
    echo: Callable[[str], None] = print,
    poll_seconds: float = 0.5,
) -> list[Any]:
    """Run every planned run of ``grid`` that is not done as a Ray task; returns the failures
    (:class:`searnn.launch.Failure`). ``address``: the cluster to join (``None``: the one ``RAY_ADDRESS``
    names, or a Ray instance already initialised in this process, else a local one)."""
    from searnn.launch import LOG_FILE, Failure, _last_line, _prepare, _summary

    check_resources(cpus_per_run, gpus_per_run)
    ray = import_ray()
    if not ray.is_initialized():
        try:
            ray.init(address=address, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as e:
            first = (str(e).splitlines() or [""])[0][:200]
            raise SearnnError(f"--ray-address {address or '(auto)'}: cannot connect to Ray ({first}); start a "
                              "cluster with `ray start --head`") from None
    task = ray.remote(run_trainer).options(num_cpus=cpus_per_run, num_gpus=gpus_per_run, max_retries=0)
    todo = [r for r in grid.runs if r.status != "done"]
    done = len(grid.runs) - len(todo)
    if done:
        echo(f"{done} of {len(grid.runs)} runs already finished (skipped)")
    pending: dict[Any, tuple[Any, float]] = {}
    failures: list[Any] = []
    try:
        for run in todo:
            options_file = _prepare(grid, run)
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            header = f"=== searnn experiment {grid.name}: {run.label} ({run.status}, ray) at {stamp} ==="
            ref = task.remote(str(options_file), str(run.run_dir / LOG_FILE), header,
                              run.config.train.threads)
            pending[ref] = (run, time.monotonic())
            verb = "resuming" if run.status == "resume" else "submitting"
            echo(f"[{done + len(pending)}/{len(grid.runs)}] {verb} {run.label} as a Ray task "
                 f"(log: {run.run_dir / LOG_FILE})")
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=poll_seconds)
            for ref in ready:
                run, start = pending.pop(ref)
                log_path = run.run_dir / LOG_FILE
                try:
                    code: int | str = ray.get(ref)
                except Exception as e:  # the task itself failed (worker died, node lost)
                    code = f"Ray task failed ({type(e).__name__}: {(str(e).splitlines() or [''])[0][:160]})"
                if code == 0 and (run.run_dir / report.RESULTS).exists():
                    run.status = "done"
                    echo(f"finished {run.label} in {report.format_seconds(time.monotonic() - start)}"
                         f"{_summary(run)}")
                    continue
                reason = code if isinstance(code, str) else f"exit status {code}"
                if code == 0:
                    reason = f"exited without writing {report.RESULTS}"
                last = _last_line(log_path)
                failures.append(Failure(run, f"{reason}: {last}" if last else reason, log_path))
                echo(f"FAILED {run.label} ({reason}); log: {log_path}")
    except BaseException as e:  # Ctrl-C, SIGTERM or an error of ours: no task may keep training
        if isinstance(e, KeyboardInterrupt):
            echo(f"interrupted: cancelling {len(pending)} Ray task(s)...")
        cancel(ray, list(pending))
        raise
    return failures


def cancel(ray: Any, refs: list[Any], grace: float = GRACE_SECONDS) -> None:
    """Cancel tasks: first gently (the trainers get SIGTERM and save ``last.pt``), then by force."""
    for ref in refs:
        with contextlib.suppress(Exception):
            ray.cancel(ref, force=False)
    if refs:
        with contextlib.suppress(Exception):
            ray.wait(refs, num_returns=len(refs), timeout=grace)
    for ref in refs:
        with contextlib.suppress(Exception):
            ray.cancel(ref, force=True)


def shared_path_note(out: Path) -> str:
    return (f"run directories under {out} must be visible at the same path on every Ray node "
            "(a shared file system)")
