"""A grid's finished runs without their checkpoints: ``searnn experiment GRID --archive DIR``.

A finished run's *records* are every file of its run dir except the checkpoints (``*.pt``), the vocabulary
files that only a checkpoint needs (``vocab*.json``) and the lock (``train.lock``): ``config.yaml`` and
``options.yaml``, ``results.json`` (validation, test and beam-test figures), ``metrics.jsonl`` (the curves and
training diagnostics), ``grid_run.json``, the saved test decodings (``test_hyps.txt``, ``test_beam_hyps.txt``)
and ``train.log``. They weigh well under a megabyte per run, against tens of megabytes of checkpoints, so
they can be kept in a repository beside the table they support.

What reads run dirs reads an archive the same way: ``searnn report DIR`` (also ``--stats``, ``--paired-bs``,
``--diagnostics``), ``searnn plot DIR/<row>``. Copied back under the grid's out dir (``cp -r DIR/. OUT/``), an
archived run counts as done for ``searnn experiment`` (:func:`searnn.grid.run_status` reads only
``config.yaml`` and ``results.json``), so a grid that spans several machines, or a machine wiped between
sessions, loses none of its finished runs. An archived run cannot be trained further or re-evaluated (there is
no checkpoint): ``searnn train`` on it prints its results when they cover the request, and otherwise says so
instead of starting again.

Only runs whose status is ``done`` are archived; runs still to train or to re-evaluate are listed and left out.
The grid's own files (``grid.yaml``, ``results.md``, ``results.json``) are copied too when present.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from searnn.errors import ConfigError, SearnnError
from searnn.grid import Grid

GRID_FILES = ("grid.yaml", "results.md", "results.json")


def is_record(path: Path) -> bool:
    """Whether a file of a run dir is part of its records (everything but checkpoints, vocabularies, lock)."""
    name = path.name
    return not (name.endswith(".pt") or name == "train.lock" or (name.startswith("vocab") and name.endswith(".json")))


@dataclass
class ArchiveReport:
    """What :func:`archive_grid` did: the runs copied and those left out (with their status)."""

    copied: list[str] = field(default_factory=list)
    left_out: list[tuple[str, str]] = field(default_factory=list)
    files: int = 0
    bytes: int = 0


def archive_grid(grid: Grid, dest: str | Path) -> ArchiveReport:
    """Copy the records of every finished run of ``grid`` to ``dest/<row>/seed<k>/`` (replacing what an
    earlier archive of the same run left there), and the grid's own files to ``dest``."""
    dest = Path(dest)
    if dest.resolve() == grid.out.resolve():
        raise ConfigError(f"--archive {dest}: that is the grid's out directory; name another directory")
    report = ArchiveReport()
    try:
        dest.mkdir(parents=True, exist_ok=True)
        for run in grid.runs:
            if run.status != "done":
                report.left_out.append((run.label, run.status))
                continue
            target = dest / run.row / f"seed{run.seed}"
            if target.exists():
                shutil.rmtree(target)
            target.mkdir(parents=True)
            for src in sorted(run.run_dir.iterdir()):
                if src.is_file() and is_record(src):
                    shutil.copy2(src, target / src.name)
                    report.files += 1
                    report.bytes += src.stat().st_size
            report.copied.append(run.label)
        for name in GRID_FILES:
            if (grid.out / name).is_file():
                shutil.copy2(grid.out / name, dest / name)
    except OSError as e:
        raise SearnnError(f"--archive {dest}: cannot write {e.filename or dest} ({e.strerror or e})") from None
    return report


def describe(report: ArchiveReport, dest: str | Path) -> str:
    """The lines ``searnn experiment --archive`` prints."""
    lines = [f"archived {len(report.copied)} finished runs to {dest} ({report.files} files, "
             f"{report.bytes / 1e6:.1f} MB; checkpoints left out)"]
    for label, status in report.left_out:
        lines.append(f"  not archived: {label} (not finished: {status})")
    return "\n".join(lines)
