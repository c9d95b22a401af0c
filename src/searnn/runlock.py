"""The run-directory lock (``train.lock``): one process trains a run directory at a time.

``train.lock`` is locked with ``fcntl.flock`` on a descriptor held open for the whole run: the kernel lets
one process hold it at a time and drops it when the holder dies (even by SIGKILL), so there is no stale
lock to detect and no window in which a lock without its PID could be taken for a stale one. The PID
written into the file only serves the error message. Without ``fcntl`` (not POSIX), the lock is a file
created atomically with its PID (``os.link`` of a temporary file), and a dead holder's lock is taken over.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from searnn.errors import SearnnError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

LOCK = "train.lock"
_HELD: dict[Path, int] = {}  # lock path -> open descriptor holding the flock (this process)
_BUSY_RETRY_SECONDS = 1.0  # a lock found busy is tried again for this long (probes by `searnn experiment`)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def _read_pid(path: Path) -> int:
    try:
        return int(path.read_text().strip() or 0)
    except (OSError, ValueError):
        return 0


def holder_name(pid: int) -> str:
    """How an error names the process holding a run's lock: ``process PID``, or ``another process`` (0: unknown)."""
    return f"process {pid}" if pid else "another process"


def _busy(run_dir: Path, path: Path, pid: int) -> SearnnError:
    return SearnnError(f"{run_dir} is being trained by {holder_name(pid)} (lock file {path}); wait for it to finish "
                       "or stop it")


def make_run_dir(run_dir: Path) -> None:
    """Create ``run_dir`` (and parents); a one-line error when it cannot be created or written."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SearnnError(f"cannot create the run directory {run_dir} ({e.strerror or e}); "
                          "choose a writable --run-dir") from None
    if not os.access(run_dir, os.W_OK):
        raise SearnnError(f"the run directory {run_dir} is not writable; choose another --run-dir")


def _lock_open_error(path: Path, e: OSError) -> SearnnError:
    return SearnnError(f"cannot create the lock file {path} ({e.strerror or e}); check that "
                       f"{path.parent} is a writable directory and {path.name} is not a directory")


def acquire_lock(run_dir: Path) -> Path:
    """Claim ``run_dir`` for this process (``train.lock``). Two processes training into one run directory would
    overwrite each other's checkpoints; the second one gets a clear error instead. The lock of a process that
    died (even by SIGKILL) is free again. Returns the lock path, for :func:`release_lock`."""
    run_dir = Path(run_dir)
    make_run_dir(run_dir)
    path = run_dir / LOCK
    if fcntl is None:  # pragma: no cover - not POSIX
        return _acquire_link_lock(run_dir, path)
    deadline = time.monotonic() + _BUSY_RETRY_SECONDS
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise _lock_open_error(path, e) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            if time.monotonic() < deadline:
                time.sleep(0.05)
                continue
            raise _busy(run_dir, path, _read_pid(path)) from None
        try:  # the holder before us may have removed the file after we opened it: lock the current file
            current = os.stat(path)
            mine = os.fstat(fd)
            same = (current.st_ino, current.st_dev) == (mine.st_ino, mine.st_dev)
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            continue
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        _HELD[path] = fd
        return path


def _acquire_link_lock(run_dir: Path, path: Path) -> Path:  # pragma: no cover - not POSIX
    tmp = run_dir / f".{LOCK}.{os.getpid()}.tmp"
    for _ in range(3):
        try:
            tmp.write_text(str(os.getpid()))
            os.link(tmp, path)
            return path
        except FileExistsError:
            pid = _read_pid(path)
            if pid and pid != os.getpid() and _alive(pid):
                raise _busy(run_dir, path, pid) from None
            path.unlink(missing_ok=True)  # stale lock
        except OSError as e:
            raise _lock_open_error(path, e) from None
        finally:
            tmp.unlink(missing_ok=True)
    raise _busy(run_dir, path, _read_pid(path))


def release_lock(path: Path) -> None:
    """Give up a lock taken by :func:`acquire_lock` (removes the lock file)."""
    path = Path(path)
    fd = _HELD.pop(path, None)
    if fd is None:
        if fcntl is None and _read_pid(path) == os.getpid():  # pragma: no cover - not POSIX
            path.unlink(missing_ok=True)
        return
    with contextlib.suppress(OSError):
        path.unlink()  # while still holding it: a waiting process then locks a new file, never this one
    os.close(fd)


def lock_holder(run_dir: Path) -> int | None:
    """``None`` when nobody trains ``run_dir``; else the PID of the process holding its lock (0 if unknown).

    Used by ``searnn experiment`` to wait for a trainer it did not start (e.g. one left by a killed grid)."""
    path = Path(run_dir) / LOCK
    if fcntl is None:  # pragma: no cover - not POSIX
        pid = _read_pid(path)
        return pid if pid and _alive(pid) else None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return _read_pid(path)
    finally:
        os.close(fd)  # also drops the shared lock taken when it was free
    return None
