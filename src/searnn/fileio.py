"""Durable file writes: every file that matters is written to a temporary file, fsynced, renamed over the
target with ``os.replace`` and then the directory is fsynced, so that a kill or a power cut leaves either
the old or the new content, never a torn mix."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from searnn.errors import SearnnError


def fsync_dir(directory: Path) -> None:
    """fsync ``directory`` so that a rename inside it is on disk (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems do not support fsync on directories
        pass
    finally:
        os.close(fd)


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


@contextlib.contextmanager
def _atomic(path: Path, mode: str) -> Iterator[IO]:
    path = Path(path)
    tmp = _tmp_name(path)
    try:
        with open(tmp, mode, encoding=None if "b" in mode else "utf-8") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise SearnnError(f"cannot write {path} ({e.strerror or e}); check that its directory is writable "
                          "and the disk is not full") from None
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def atomic_write_text(text: str, path: Path) -> None:
    """Replace ``path`` by ``text`` atomically and durably (temp file, fsync, rename, fsync of the dir)."""
    with _atomic(Path(path), "w") as fh:
        fh.write(text)


def atomic_write_with(write: Callable[[IO[bytes]], None], path: Path) -> None:
    """Replace ``path`` atomically and durably by what ``write(binary_file)`` writes (e.g. ``torch.save``)."""
    with _atomic(Path(path), "wb") as fh:
        write(fh)


def keep_previous(path: Path, previous: Path) -> None:
    """Make ``previous`` a copy of ``path`` (a hard link where possible), atomically; ``path`` stays in place.

    Called before ``path`` is replaced, so that the last good version survives a replacement that turns out
    to be unreadable."""
    path, previous = Path(path), Path(previous)
    if not path.exists():
        return
    tmp = _tmp_name(previous)
    with contextlib.suppress(OSError):
        tmp.unlink()
    try:
        os.link(path, tmp)
    except OSError:  # no hard links here: copy
        atomic_write_with(lambda fh: fh.write(path.read_bytes()), previous)
        return
    os.replace(tmp, previous)
    fsync_dir(previous.parent)
