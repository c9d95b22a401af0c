"""The divergence policy of ``searnn train``: when training stops because the model blew up.

Training stops with a :class:`DivergenceError` naming the epoch and batch when

* a batch's loss is NaN or infinite (checked before the optimizer step, so the step is not taken);
* a parameter is NaN or infinite after an optimizer step (e.g. ``--lr inf``);
* a batch's loss exceeds ``LOSS_FACTOR`` times ``max(1, |reference|)``, where the reference is the loss of the
  run's first trained batch (the untrained or warm-started model, which cannot have diverged yet): with
  ``--lr 1e30`` the loss jumps to ~1e30 on the second batch.

The run's checkpoints are left as they were before the failing batch (a non-finite model is never written).
The reference loss is saved in ``last.pt`` so that a resumed run applies the same threshold.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from searnn.errors import SearnnError

LOSS_FACTOR = 1e6
_FACTOR_TEXT = f"{LOSS_FACTOR:.0e}".replace("e+0", "e").replace("e+", "e")  # "1e6"

POLICY_HELP = (
    "divergence: training stops with an error naming the epoch and batch when a batch's loss is NaN/inf or "
    f"above {_FACTOR_TEXT} x max(1, |loss of the run's first batch|), or when a parameter becomes NaN/inf "
    "after an optimizer step; no non-finite checkpoint is ever written, and the run can be redone with a "
    "lower --lr in a new --run-dir."
)


class TrainingError(SearnnError):
    """Training cannot go on (non-finite loss, ...)."""


class DivergenceError(TrainingError):
    """Training diverged (non-finite or exploding loss, non-finite parameters)."""


class DivergenceGuard:
    """Checks each batch against the policy above; its state (the reference loss) goes into ``last.pt``."""

    def __init__(self, factor: float = LOSS_FACTOR):
        self.factor = factor
        self.reference: float | None = None

    def threshold(self) -> float | None:
        """The loss above which training stops (``None`` before the first batch)."""
        return None if self.reference is None else self.factor * max(1.0, abs(self.reference))

    def check_loss(self, loss: float, where: str, hint: str) -> None:
        """Call with each batch's loss before the optimizer step; ``where`` is e.g. ``epoch 1, batch 3``."""
        if not math.isfinite(loss):
            raise DivergenceError(f"non-finite loss ({loss}) at {where} ({hint}); lower the learning rate, or check "
                                  "the data")
        if self.reference is None:
            self.reference = loss
            return
        limit = self.threshold()
        if limit is not None and abs(loss) > limit:
            raise DivergenceError(
                f"training diverged at {where}: loss {loss:.3g} is above {self.factor:g} x the first batch's "
                f"loss {self.reference:.3g} ({hint}); lower the learning rate"
            )

    @staticmethod
    def check_parameters(named: Iterable[tuple[str, torch.Tensor]], where: str, hint: str) -> None:
        """Call after each optimizer step with ``model.named_parameters()``: every parameter must be finite.

        One reduction per tensor and a single sync: NaN or infinity anywhere makes the total non-finite (so
        does a total above the float range, which only a diverged model reaches); the offending tensors are
        then named."""
        named = [(name, p.detach()) for name, p in named]
        if not named or math.isfinite(float(torch.stack([p.sum() for _, p in named]).sum())):
            return
        bad = [name for name, p in named if not bool(torch.isfinite(p).all())] or ["(their sum overflows)"]
        raise DivergenceError(f"non-finite parameters after the optimizer step of {where}: {', '.join(bad[:3])} "
                              f"({hint}); the model diverged: lower the learning rate (a new --run-dir)")

    def state_dict(self) -> dict[str, float | None]:
        return {"reference": self.reference}

    def load_state_dict(self, state: dict[str, float | None]) -> None:
        ref = state.get("reference")
        self.reference = None if ref is None else float(ref)
