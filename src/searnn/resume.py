"""The checkpoint half of :class:`searnn.train.Trainer`: writing ``last.pt``, resuming from it exactly, and
the ``--warm-start`` weights. :class:`Checkpointing` is a mixin; the trainer provides the attributes it reads."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from searnn import checkpoint as ckpt
from searnn import distributed
from searnn.divergence import DivergenceGuard
from searnn.errors import SearnnError
from searnn.optim import Plateau
from searnn.run_setup import log


@dataclass
class LoopState:
    """Where training stands; saved in ``last.pt``."""

    epoch: int = 0  # completed epochs
    batch: int = 0  # batches of the current epoch already trained (mid-epoch checkpoints)
    best: float | None = None
    best_epoch: int = -1
    train_seconds: float = 0.0  # cumulative, excluding evaluation
    stopped: str = ""
    sums: dict[str, float] = field(default_factory=dict)  # running sums of the current epoch
    epoch_seconds: float = 0.0


class Checkpointing:
    """``last.pt`` and warm starts for a trainer holding the attributes below."""

    dist: distributed.Context
    device: torch.device
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    plateau: Plateau
    state: LoopState
    objective: Any
    guard: DivergenceGuard
    scaler: Any
    run_dir: Path

    def save_last(self, rng: dict[str, Any] | None = None, objective: dict[str, Any] | None = None) -> None:
        """Write ``last.pt`` (the previous one is kept as ``last.prev.pt``); tensors and plain data only.
        ``rng`` / ``objective``: the random-generator and objective states to save (default: the current
        ones); an interrupted batch saves the states it started from, so that the resumed run redoes it
        exactly (same random choices, same schedule progress). In a distributed job only rank 0 writes
        (every rank holds the same model and optimizer state; the ranks' random streams are reseeded per
        batch, see :mod:`searnn.distributed`)."""
        if not self.dist.is_main:
            return
        extra = {"scaler": self.scaler.state_dict()} if self.scaler is not None else {}
        ckpt.save_last(
            {
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "plateau": self.plateau.state_dict(),
                "state": asdict(self.state),
                "rng": rng if rng is not None else ckpt.rng_state(),
                "objective": objective if objective is not None else getattr(self.objective, "state_dict", dict)(),
                "divergence": self.guard.state_dict(),
                "world_size": self.dist.world,
                **extra,
            },
            self.run_dir,
        )

    def batch_rng_state(self) -> dict[str, Any] | None:
        """The generator states the current batch started from (``None`` before the first batch)."""
        captured = getattr(self, "batch_rng", None)
        return ckpt.rng_state(captured) if captured is not None else None

    def load_last(self) -> None:
        """Resume from ``last.pt`` (or ``last.prev.pt`` when ``last.pt`` is unreadable, with a warning)."""
        data = ckpt.load_last(self.run_dir, self.device, log)
        try:
            self._restore(data)
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            first = (str(e).splitlines() or [""])[0][:160]
            raise SearnnError(f"{self.run_dir / ckpt.LAST}: does not fit this run ({type(e).__name__}: {first}); "
                              f"delete {self.run_dir} to start over") from None
        log(f"resuming {self.run_dir} at epoch {self.state.epoch + 1}, batch {self.state.batch}")

    def _restore(self, data: dict[str, Any]) -> None:
        self.model.load_state_dict(data["model"])
        self.optimizer.load_state_dict(data["optimizer"])
        self.plateau.load_state_dict(data["plateau"])
        self.state = LoopState(**data["state"])
        ckpt.set_rng_state(data["rng"])
        self.guard.load_state_dict(data.get("divergence", {}))
        if self.scaler is not None and "scaler" in data:
            self.scaler.load_state_dict(data["scaler"])
        if self.dist.is_main:
            ckpt.truncate_jsonl(self.run_dir / ckpt.METRICS_LOG, self.state.epoch, warn=log)
        if hasattr(self.objective, "load_state_dict"):
            self.objective.load_state_dict(data.get("objective", {}))

    def warm_start(self, source: Path) -> None:
        path = source / ckpt.BEST if source.is_dir() else source
        data = ckpt.load_checkpoint(path, self.device, what=f"--warm-start {source}")
        try:
            self.model.load_state_dict(data["model"])
        except RuntimeError as e:
            raise SearnnError(f"--warm-start {path}: the checkpoint does not fit this model ({e})") from None
        log(f"warm start from {path}")
