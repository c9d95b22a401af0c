"""Child processes that die with their parent: ``searnn experiment`` starts its trainers through
:func:`die_with_parent`, so that a driver killed with SIGKILL (which it cannot catch) does not leave them
training on, unsupervised, into run directories that a rerun of the grid then finds busy.

On Linux the child asks the kernel (``prctl(PR_SET_PDEATHSIG, SIGTERM)``) for a SIGTERM when its parent dies;
``searnn train`` treats SIGTERM like Ctrl-C: it saves ``last.pt`` and exits, so the run resumes on the next
attempt. Elsewhere there is no such mechanism and :func:`die_with_parent` returns ``None`` (children then
outlive a SIGKILLed driver, and a rerun waits for them, see :func:`searnn.launch.launch`).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import sys
from collections.abc import Callable, Iterator
from typing import Any

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _libc_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl
    except (OSError, AttributeError):
        return None


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` for :class:`subprocess.Popen` that makes the child receive ``sig`` when this process
    dies; ``None`` where the platform cannot do it. Resolved here, in the parent: the function that runs in
    the child between fork and exec only makes the system call."""
    prctl = _libc_prctl()
    if prctl is None:
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, ctypes.c_ulong(int(sig)), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0))
        if os.getppid() != parent:  # the parent died before the request was made
            os.kill(os.getpid(), sig)

    return preexec


@contextlib.contextmanager
def signal_handled(signum: int, handler: Any) -> Iterator[None]:
    """Install ``handler`` (a function or ``signal.SIG_IGN``) for ``signum`` inside the block and restore the
    previous one after it. A no-op where signals cannot be set (outside the main thread)."""
    try:
        previous = signal.signal(signum, handler)
    except (ValueError, AttributeError):
        yield
        return
    try:
        yield
    finally:
        signal.signal(signum, previous)
