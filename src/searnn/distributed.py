"""Data-parallel training of one run over several processes (``torchrun`` or ``searnn train --nproc N``).

How a run is split
------------------
* **Process group.** ``torchrun`` sets ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` / ``MASTER_ADDR``; :func:`setup`
  joins the group with the gloo backend on CPU and NCCL on CUDA (rank ``r`` uses ``cuda:LOCAL_RANK``), with a
  timeout on every collective (``SEARNN_DIST_TIMEOUT`` seconds, default 300), so a lost peer never hangs a
  rank forever.
* **Batches.** Every rank builds the same list of global batches from the seed (``--batch-size`` stays the
  global batch) and keeps rows ``rank, rank + W, rank + 2W, ...`` of each (:func:`shard_batch`).
* **Random choices.** Before each batch every rank reseeds torch / numpy / python from
  ``(seed, epoch, batch, rank)`` (:func:`seed_batch`): its own stream for roll-in mixing, token sampling,
  RAML samples and dropout, reproducible on resume whatever the world size was before.
* **Gradients.** Objectives call model methods other than ``forward`` (``encode``, ``step``, ...), so the
  ``DistributedDataParallel`` wrapper, whose reducer is armed by ``forward``, would miss their gradients;
  and DDP averages gradients with equal weights, which is wrong when the ranks' loss denominators differ.
  We therefore all-reduce the gradients ourselves after ``backward`` (:func:`all_reduce_gradients`, one
  flat buffer per step), which is what DDP does for a single forward, with the right weights:

  An objective returns ``LossOutput(loss, denom)`` with ``loss = S_r / d_r`` (``S_r`` the sum of the
  shard's normalised cell losses, ``d_r`` its denominator: sequences for ``cell-per-seq``, active cells for
  ``cell-global``, rows for ``batch``). The global batch's loss is ``sum_r S_r / D`` with ``D = sum_r d_r``
  (summed with the gradients); each rank backpropagates ``S_r = loss * d_r``, one all-reduce sums the
  gradients and ``(S_r, d_r)`` over the ranks, and the sums are divided by ``D``: every rank holds the
  single-process gradient of the global batch before clipping and the optimiser step (identical on every
  rank, so the parameters stay identical). One collective per step.
* **Evaluation.** Rank ``r`` decodes examples ``r, r + W, ...``; the decoded outputs are gathered to every
  rank in the original order and rank 0 scores them once (:func:`gather_in_order`, exact for every metric,
  BLEU, CIDEr and F1 included), then broadcasts the scores.
* **Files.** Rank 0 alone locks the run dir and writes ``config.yaml``, checkpoints, logs and results.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import random
import signal
import subprocess
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from searnn.children import signal_handled
from searnn.data.batch import Batch
from searnn.errors import SearnnError
from searnn.syncguard import mark_host

DEFAULT_TIMEOUT = 300.0
"""Seconds a collective may wait for the other ranks (``SEARNN_DIST_TIMEOUT`` overrides)."""


class DistributedError(SearnnError):
    """A collective failed: another rank died or stopped answering."""


@dataclass(frozen=True)
class Context:
    """Where this process stands in the job; ``world == 1`` means no process group (plain training)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


SINGLE = Context()
_current = SINGLE


def current() -> Context:
    """The context :func:`setup` created (``SINGLE`` outside a distributed job)."""
    return _current


def env_context() -> Context:
    """The context the environment describes (before joining the group): for picking the device."""
    if not launched_by_torchrun():
        return SINGLE
    return Context(int(os.environ.get("RANK", "0")), int(os.environ["WORLD_SIZE"]),
                   int(os.environ.get("LOCAL_RANK", "0")))


def launched_by_torchrun() -> bool:
    """Whether this process is a worker of ``torchrun`` with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def timeout_seconds() -> float:
    raw = os.environ.get("SEARNN_DIST_TIMEOUT", "")
    try:
        value = float(raw) if raw else DEFAULT_TIMEOUT
    except ValueError:
        raise SearnnError(f"SEARNN_DIST_TIMEOUT={raw!r}: expected a number of seconds") from None
    if not value > 0:
        raise SearnnError(f"SEARNN_DIST_TIMEOUT={raw!r}: must be > 0")
    return value


def device_for(name: str, ctx: Context) -> str:
    """The device name of this rank: ``cuda`` / ``auto`` with CUDA become ``cuda:LOCAL_RANK``."""
    if not ctx.enabled:
        return name
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        return f"cuda:{ctx.local_rank}"
    return name


def setup(device: torch.device) -> Context:
    """Join the process group that ``torchrun`` describes in the environment (a no-op without one)."""
    global _current
    if not launched_by_torchrun():
        _current = SINGLE
        return _current
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        try:
            dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_seconds()))
        except (RuntimeError, ValueError) as e:
            first = (str(e).splitlines() or [""])[0][:200]
            raise DistributedError(f"cannot join the training processes ({type(e).__name__}: {first})") from None
    _current = Context(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    return _current


def teardown(synchronise: bool = True) -> None:
    """Leave the process group (after the run, or when it failed).

    ``synchronise``: first wait until every process has arrived here (after a run that ended normally).
    Without it, a process that leaves while another still talks to the group's store (which rank 0 hosts)
    can make that other process abort at exit ("terminate called without an active exception"), turning a
    finished job into a failed one. After a failure the wait is skipped: a dead peer would never come."""
    global _current
    if dist.is_initialized():
        if synchronise and current().world > 1:
            with contextlib.suppress(DistributedError):
                barrier("leaving the process group")
        try:
            dist.destroy_process_group()
        except (RuntimeError, ValueError):  # pragma: no cover - a broken group
            pass
    _current = SINGLE


@contextlib.contextmanager
def sigterm_ignored() -> Iterator[None]:
    """Ignore SIGTERM inside the block (the checkpoint written after an interruption; torchrun sends its
    SIGTERM twice). A no-op outside the main thread."""
    with signal_handled(signal.SIGTERM, signal.SIG_IGN):
        yield


def _collective(what: str, fn: Any, *args: Any) -> Any:
    """Run one collective; a lost peer or a timeout becomes a one-line :class:`DistributedError`."""
    try:
        return fn(*args)
    except (RuntimeError, ValueError, OSError) as e:  # DistBackendError is a RuntimeError
        first = (str(e).splitlines() or [""])[0][:160]
        rank = current().rank
        raise DistributedError(f"rank {rank}: lost contact with another training process during {what} "
                               f"({type(e).__name__}: {first})") from None


def barrier(what: str = "a barrier") -> None:
    if current().enabled:
        _collective(what, dist.barrier)


def shard_rows(n: int, ctx: Context) -> list[int]:
    """The rows of an ``n``-row global batch that rank ``ctx.rank`` trains: ``rank, rank + W, ...``."""
    return list(range(ctx.rank, n, ctx.world))


def shard_batch(batch: Batch, ctx: Context) -> Batch | None:
    """This rank's rows of a global batch, with the padding trimmed to them (``None`` when it has no rows,
    a last batch smaller than the world size). Shapes: ``src (b, S', ...)``, ``tgt (b, T')``."""
    rows = shard_rows(batch.size, ctx)
    if not rows:
        return None
    idx = torch.tensor(rows, dtype=torch.long)
    src_len, tgt_len = batch.src_len[idx], batch.tgt_len[idx]
    s, t = int(src_len.max()), int(tgt_len.max())
    host = None if batch.src_len_host is None else mark_host(batch.src_len_host[idx])  # stays on the CPU
    return Batch(batch.src[idx, :s], src_len, batch.tgt[idx, :t], tgt_len, batch.index[idx], src_len_host=host)


def batch_seed(seed: int, epoch: int, batch: int, rank: int) -> int:
    """A 63-bit seed for one (epoch, batch, rank), different for every rank."""
    mixed = np.random.SeedSequence([seed % 2**32, epoch, batch, rank, 0x5EA])
    return int(mixed.generate_state(2, dtype=np.uint32).astype(np.uint64).dot([1, 2**32]) % 2**63)


def seed_batch(seed: int, epoch: int, batch: int, ctx: Context) -> None:
    """Reseed torch (CPU and CUDA), numpy and python for this rank's part of one batch."""
    value = batch_seed(seed, epoch, batch, ctx.rank)
    random.seed(value)
    np.random.seed(value % 2**32)
    torch.manual_seed(value)


def broadcast_parameters(model: torch.nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every rank (the seeded initialisation is the same anyway)."""
    if not current().enabled:
        return
    with torch.no_grad():
        for tensor in list(model.parameters()) + list(model.buffers()):
            _collective("the parameter broadcast", dist.broadcast, tensor.data, 0)


def all_reduce_gradients(params: Iterable[torch.nn.Parameter], extra: Sequence[float] = ()) -> list[float]:
    """Sum every parameter's gradient, and the floats ``extra``, over the ranks in one flat all-reduce;
    returns the summed ``extra``.

    A parameter whose gradient is ``None`` contributes zeros; it keeps ``None`` only when it has no
    gradient on any rank, as a single process would leave it (the optimiser then skips it). Outside a
    distributed job nothing changes and ``extra`` comes back as is."""
    params = [p for p in params if p.requires_grad]
    if not current().enabled or not params:
        return [float(x) for x in extra]
    device, dtype = params[0].device, torch.float32
    grads = [p.grad.reshape(-1).to(dtype) if p.grad is not None else torch.zeros(p.numel(), device=device,
                                                                                 dtype=dtype) for p in params]
    flags = torch.tensor([p.grad is not None for p in params], dtype=dtype, device=device)
    tail = torch.tensor(list(extra), dtype=dtype, device=device)
    flat = torch.cat(grads + [flags, tail])
    _collective("the gradient all-reduce", dist.all_reduce, flat)
    offset = 0
    for p in params:
        n = p.numel()
        part = flat[offset : offset + n].view_as(p).to(p.dtype)
        offset += n
        p.grad = part.clone() if p.grad is None else p.grad.copy_(part)
    summed = flat[offset:].tolist()
    for p, flag in zip(params, summed[: len(params)], strict=True):
        if flag == 0:
            p.grad = None
    return summed[len(params):]


def scale_gradients(params: Iterable[torch.nn.Parameter], factor: float) -> None:
    """Multiply every existing gradient by ``factor`` (in place)."""
    for p in params:
        if p.grad is not None:
            p.grad.mul_(factor)


def gather_in_order(rows: Sequence[int], values: Sequence[Any], n: int) -> list[Any]:
    """Every rank's ``values`` (for its ``rows`` of ``0..n-1``) gathered on every rank, in row order."""
    ctx = current()
    if not ctx.enabled:
        out: list[Any] = [None] * n
        for i, v in zip(rows, values, strict=True):
            out[i] = v
        return out
    parts: list[Any] = [None] * ctx.world
    _collective("the evaluation gather", dist.all_gather_object, parts, (list(rows), list(values)))
    out = [None] * n
    for part_rows, part_values in parts:
        for i, v in zip(part_rows, part_values, strict=True):
            out[i] = v
    return out


def broadcast_object(value: Any) -> Any:
    """Rank 0's ``value`` on every rank."""
    if not current().enabled:
        return value
    box = [value]
    _collective("the result broadcast", dist.broadcast_object_list, box, 0)
    return box[0]


# ------------------------------------------------------------------------------------------ --nproc


def strip_option(argv: Sequence[str], name: str) -> list[str]:
    """``argv`` without ``--name VALUE`` / ``--name=VALUE``."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == name:
            skip = True
            continue
        if arg.startswith(name + "="):
            continue
        out.append(arg)
    return out


def torchrun_command(argv: Sequence[str], nproc: int) -> list[str]:
    """The command ``searnn train --nproc N ARGS`` runs: ``torchrun --standalone`` on this machine."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "--max_restarts=0", "-m", "searnn.cli", "train", *strip_option(argv, "--nproc")]


def check_nproc(nproc: int, device: str) -> None:
    """``--nproc N`` on CUDA needs N GPUs on this machine (process ``r`` uses ``cuda:r``)."""
    if device.startswith("cuda:"):
        raise SearnnError(f"--nproc {nproc} with --device {device}: each process takes its own GPU "
                          "(cuda:LOCAL_RANK); use --device cuda")
    wants_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if wants_cuda and torch.cuda.device_count() < nproc:
        raise SearnnError(f"--nproc {nproc} needs {nproc} GPUs with --device {device}, this machine has "
                          f"{torch.cuda.device_count()}; lower --nproc or use --device cpu")


def launch_local(argv: Sequence[str], nproc: int) -> int:
    """Run ``searnn train ARGS`` as ``nproc`` processes of a local torchrun; a failed process is one line."""
    from searnn.children import die_with_parent

    env = {**os.environ, "SEARNN_NPROC_LAUNCHED": "1"}
    proc = subprocess.Popen(torchrun_command(argv, nproc), env=env, preexec_fn=die_with_parent())
    try:
        code = proc.wait()
    except KeyboardInterrupt:  # Ctrl-C (torchrun got it too) or SIGTERM: torchrun stops its workers, who save
        with sigterm_ignored():
            with contextlib.suppress(OSError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        raise
    if code != 0:
        raise DistributedError(f"--nproc {nproc}: a training process failed (torchrun exit status {code}, its "
                               "report is above); last.pt keeps the completed batches: run the same command "
                               "again to resume")
    return 0
