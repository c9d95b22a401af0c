"""A CPU detector of the operations that would synchronise a CUDA device with the host.

On CUDA, ``torch.cuda.set_sync_debug_mode("error")`` catches a host synchronisation when it happens. This
module finds the same operations on a CPU-only machine, from the aten ops that run: every tensor is on the
CPU here, so each one stands for a device tensor, except the ones the code marks as host data
(:func:`mark_host`, and what is computed from host tensors only).

:class:`SyncGuard` is a context manager that records (``mode="record"``) or raises on (``mode="raise"``)

* ``_local_scalar_dense``: ``item()``, ``int()``, ``float()``, ``bool()`` of a tensor (early exits, counters);
* ops whose output shape depends on the values: ``nonzero``, ``masked_select``, ``unique`` (all variants),
  ``repeat_interleave`` with tensor repeats and no ``output_size``, ``index.Tensor`` / ``index_put`` with a
  boolean index (``x[mask]``, ``x[mask] = v``), ``masked_scatter``, ``bincount`` without ``minlength``...;
* copies to the host (``.cpu()``, ``.tolist()``, ``.numpy()``, ``.to("cpu")`` with the device as a string) of a
  device tensor, and
  tensors made from host data inside the guarded code (``torch.tensor(list)``, indexing with a Python
  list: ``lift_fresh`` of a tensor with dimensions), a blocking host->device copy on CUDA (a Python scalar
  wrapped as a 0-d tensor, ``x[i] = 0.5``, is no copy).

Plain arithmetic, ``nonzero_static``, ``gather``, ``scatter``, ``where``, indexing with long tensors, ``topk``,
``sort`` and reductions kept as tensors are not flagged. Host tensors (marked with :func:`mark_host`, e.g. the
batch's lengths for ``pack_padded_sequence``) and tensors computed from host tensors only are exempt.

Usage (tests)::

    with SyncGuard() as guard:
        objective.search(model, batch)
    assert not guard.events, guard.report()
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

_HOST_ATTR = "_searnn_host"

aten = torch.ops.aten

_ALWAYS: dict[Any, str] = {
    aten._local_scalar_dense.default: "tensor read on the host (item/int/float/bool)",
    aten.nonzero.default: "nonzero (data-dependent shape)",
    aten.nonzero.out: "nonzero (data-dependent shape)",
    aten.nonzero_numpy.default: "nonzero (data-dependent shape)",
    aten.argwhere.default: "argwhere (data-dependent shape)",
    aten.masked_select.default: "masked_select (data-dependent shape)",
    aten.masked_scatter.default: "masked_scatter (reads the mask's count)",
    aten.masked_scatter_.default: "masked_scatter_ (reads the mask's count)",
    aten._unique.default: "unique (data-dependent shape)",
    aten._unique2.default: "unique (data-dependent shape)",
    aten.unique_dim.default: "unique (data-dependent shape)",
    aten.unique_consecutive.default: "unique_consecutive (data-dependent shape)",
    aten.unique_dim_consecutive.default: "unique_consecutive (data-dependent shape)",
    aten.lift_fresh.default: "tensor made from host data (blocking host->device copy)",
    aten.equal.default: "torch.equal (a host boolean)",
    aten.is_nonzero.default: "tensor read on the host (bool)",
    aten.allclose.default: "allclose (a host boolean)",
}

_REPEATS = (aten.repeat_interleave.Tensor, aten.repeat_interleave.self_Tensor)
_INDEXING = (aten.index.Tensor, aten.index_put.default, aten.index_put_.default, aten._index_put_impl_.default)
_HOST_OUTPUTS = {aten._pack_padded_sequence.default: (1,)}
"""Ops whose listed outputs are host tensors by contract (``batch_sizes`` of a packed sequence)."""


def mark_host(tensor: torch.Tensor) -> torch.Tensor:
    """Mark ``tensor`` as host data (a CPU tensor on a CUDA run: reading it does not synchronise). Returns it."""
    setattr(tensor, _HOST_ATTR, True)
    return tensor


def is_host(tensor: torch.Tensor) -> bool:
    """Whether ``tensor`` (or the tensor it is a view of) is marked as host data."""
    base = tensor._base
    return bool(getattr(tensor, _HOST_ATTR, False) or (base is not None and getattr(base, _HOST_ATTR, False)))


@dataclass(frozen=True)
class SyncEvent:
    """One flagged operation: its name, why it synchronises, and where it was called (``file:line``)."""

    op: str
    reason: str
    where: str


_THIS_FILE = __file__.replace("\\", "/")


def _caller() -> str:
    """The innermost frame outside torch and this module, as ``file:line``."""
    for frame in reversed(traceback.extract_stack()):
        name = frame.filename.replace("\\", "/")
        if "/torch/" in name or name == _THIS_FILE:
            continue
        return f"{name}:{frame.lineno}"
    return "?"


def _dispatch_reason(func: Any, args: tuple, kwargs: dict) -> str | None:
    """Why ``func(*args, **kwargs)`` would synchronise a CUDA device, or None."""
    if func is aten.lift_fresh.default and args and args[0].dim() == 0:
        return None  # a Python scalar wrapped for an op (x[i] = 0.5): a host scalar argument, no copy
    if func in _ALWAYS:
        return _ALWAYS[func]
    if func in _REPEATS:
        if kwargs.get("output_size") is None and not (len(args) > 2 and args[-1] is not None):
            return "repeat_interleave with tensor repeats and no output_size"
        return None
    if func in _INDEXING:
        indices = args[1] if len(args) > 1 else kwargs.get("indices", ())
        if any(isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8) for i in indices):
            return "boolean-mask indexing (data-dependent shape)"
        return None
    if func in (aten.bincount.default,):
        return "bincount (output size read from the data)"
    if func in (aten._to_copy.default, aten.copy_.default):
        return None  # device moves are checked at the function level (a CPU->CPU copy is no move here)
    return None


def _tensors(value: Any) -> list[torch.Tensor]:
    return [t for t in tree_leaves(value) if isinstance(t, torch.Tensor)]


class _Dispatch(TorchDispatchMode):
    def __init__(self, guard: SyncGuard):
        super().__init__()
        self.guard = guard

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        inputs = _tensors((args, kwargs))
        host = bool(inputs) and all(is_host(t) for t in inputs)
        if not host and self.guard.active:
            reason = _dispatch_reason(func, args, kwargs)
            if reason is not None:
                self.guard._flag(str(func), reason)
        out = func(*args, **kwargs)
        if host:
            for t in _tensors(out):
                mark_host(t)
        elif func in _HOST_OUTPUTS and isinstance(out, tuple):
            for i in _HOST_OUTPUTS[func]:
                mark_host(out[i])
        return out


_HOST_COPIES = {torch.Tensor.cpu, torch.Tensor.tolist, torch.Tensor.numpy}  # item(): _local_scalar_dense


def _targets_cpu(args: tuple, kwargs: dict) -> bool:
    """Whether a ``Tensor.to`` call names the CPU as a string (``.to("cpu")``). A ``torch.device`` argument is
    taken as the run's own device (on this CPU machine it is the CPU too: ``.to(x.device)`` moves nothing)."""
    return any(isinstance(value, str) and value.split(":")[0] == "cpu" for value in (*args[1:], kwargs.get("device")))


class _Function(TorchFunctionMode):
    def __init__(self, guard: SyncGuard):
        super().__init__()
        self.guard = guard

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if self.guard.active and args and isinstance(args[0], torch.Tensor) and not is_host(args[0]):
            if func in _HOST_COPIES:
                self.guard._flag(f"Tensor.{func.__name__}", "copy of a device tensor to the host")
            elif func is torch.Tensor.to and _targets_cpu(args, kwargs):
                self.guard._flag("Tensor.to", "copy of a device tensor to the host")
        return func(*args, **kwargs)


class SyncGuard:
    """Context manager recording (``mode="record"``) or raising on (``mode="raise"``) the operations that
    synchronise a CUDA device (see the module docstring). ``events``: the :class:`SyncEvent` list.
    ``allow()``: a nested context in which nothing is flagged (code known to run on host data)."""

    def __init__(self, mode: str = "record"):
        if mode not in ("record", "raise"):
            raise ValueError(f"unknown SyncGuard mode {mode!r}; valid: record, raise")
        self.mode = mode
        self.events: list[SyncEvent] = []
        self.active = True
        self._modes: list[Any] = []

    def _flag(self, op: str, reason: str) -> None:
        event = SyncEvent(op, reason, _caller())
        self.events.append(event)
        if self.mode == "raise":
            raise RuntimeError(f"host synchronisation: {op} ({reason}) at {event.where}")

    def __enter__(self) -> SyncGuard:
        self._modes = [_Function(self), _Dispatch(self)]
        for mode in self._modes:
            mode.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        for mode in reversed(self._modes):
            mode.__exit__(None, None, None)
        self._modes = []

    def allow(self) -> _Allow:
        """``with guard.allow(): ...`` suspends the checks (host-side code)."""
        return _Allow(self)

    def report(self) -> str:
        """The events, one per line (``op: reason at file:line``), or ``'no synchronisation'``."""
        if not self.events:
            return "no synchronisation"
        return "\n".join(f"{e.op}: {e.reason} at {e.where}" for e in self.events)


class _Allow:
    def __init__(self, guard: SyncGuard):
        self.guard = guard
        self.before = guard.active

    def __enter__(self) -> None:
        self.before = self.guard.active
        self.guard.active = False

    def __exit__(self, *exc: object) -> None:
        self.guard.active = self.before


def no_sync(mode: str = "record") -> SyncGuard:
    """A :class:`SyncGuard` (``with no_sync() as guard: ...``)."""
    return SyncGuard(mode)
