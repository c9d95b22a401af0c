"""Checks made before a run writes anything, so that a bad command leaves no trace behind.

:func:`check_run_dir_writable` refuses a ``--run-dir`` that cannot be created or written (under a regular
file, in a read-only or virtual file system such as ``/proc``) with a one-line
:class:`~searnn.errors.ConfigError`, instead of an ``OSError`` raised halfway through the set-up.
"""

from __future__ import annotations

import os
from pathlib import Path

from searnn.errors import ConfigError


def check_run_dir_writable(run_dir: str) -> None:
    """Raise :class:`ConfigError` when ``run_dir`` (``--run-dir``) cannot be created or written to.

    Nothing is created: the deepest existing ancestor must be a writable directory (and ``run_dir`` itself,
    when it exists, a writable directory)."""
    if not run_dir:
        raise ConfigError("--run-dir is required")
    path = Path(run_dir).expanduser().absolute()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--run-dir {run_dir}: exists and is not a directory")
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"--run-dir {run_dir}: cannot be created, {probe} is a file, not a directory")
    if not os.access(probe, os.W_OK | os.X_OK) or _virtual_fs(probe):
        what = "is not writable" if probe == path else f"cannot be created ({probe} is not writable)"
        raise ConfigError(f"--run-dir {run_dir}: {what}")


def _virtual_fs(path: Path) -> bool:
    """Inside ``/proc`` or ``/sys``, where even root cannot create directories."""
    parts = path.resolve().parts
    return len(parts) > 1 and parts[1] in ("proc", "sys")
