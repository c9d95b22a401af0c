"""Opt-in wall-clock regions for profiling a SeaRNN batch (benchmarks only; off by default).

``with region("rollout"):`` times its block when profiling is on and does nothing otherwise (one global
check, no allocation): normal training pays nothing measurable. Regions nest; a region is recorded under
the slash-joined names of the regions open around it (``"rollout/decoder.projection"``), so the same
decoder region is told apart in the roll-in and in the roll-outs. Each region also opens a
``torch.profiler.record_function`` range of the same name, so a ``torch.profiler`` trace shows them.
On CUDA the device is synchronised at both ends of a region while profiling (the times are then the
device's, and the run is slower).

Usage::

    with profiling() as times:   # dict[str, float], seconds summed per region path
        objective(model, batch)
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch

_times: dict[str, float] | None = None
_stack: list[str] = []


class _Region:
    """A timed region (see the module docstring); created only while profiling is on."""

    __slots__ = ("name", "path", "start", "rf")

    def __init__(self, name: str):
        self.name = name

    def __enter__(self) -> _Region:
        _sync()
        _stack.append(self.name)
        self.path = "/".join(_stack)
        self.rf = torch.profiler.record_function(self.name)
        self.rf.__enter__()
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        _sync()
        elapsed = time.perf_counter() - self.start
        self.rf.__exit__(None, None, None)
        _stack.pop()
        if _times is not None:
            _times[self.path] = _times.get(self.path, 0.0) + elapsed


class _Null:
    """The region used while profiling is off: enters and exits doing nothing."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_NULL = _Null()
_sync_cuda = False


def _sync() -> None:
    if _sync_cuda:
        torch.cuda.synchronize()


def region(name: str) -> _Region | _Null:
    """A context manager timing its block as ``name`` while :func:`profiling` is on (else a no-op)."""
    if _times is None:
        return _NULL
    return _Region(name)


def enabled() -> bool:
    """Whether profiling is on (callers may skip work that only feeds the profile)."""
    return _times is not None


@contextmanager
def profiling(times: dict[str, float] | None = None, cuda: bool = False) -> Iterator[dict[str, float]]:
    """Turn profiling on for the block; yields the dict (``times`` or a new one) that the regions add
    their seconds to. ``cuda``: synchronise the CUDA device at region boundaries."""
    global _times, _sync_cuda
    previous, previous_sync = _times, _sync_cuda
    _times = {} if times is None else times
    _sync_cuda = cuda
    try:
        yield _times
    finally:
        _times, _sync_cuda = previous, previous_sync
