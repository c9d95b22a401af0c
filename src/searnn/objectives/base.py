"""The objective seam: ``objective(model, batch) -> LossOutput``.

The training loop never knows which objective it runs. An objective is a class constructed once per
run with ``(config, task)`` and called as ``objective(model, batch)`` on every batch; it receives the model, so
search-based objectives (SeaRNN) can roll in and out through it. Objectives are registered by name in
:data:`searnn.objectives.OBJECTIVES` with their config dataclass.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from searnn.data.batch import Batch
from searnn.data.task import TaskData


@dataclass
class LossOutput:
    """``loss``: scalar tensor to backpropagate (already normalised); ``denom``: what it was normalised
    by (for logging sums); ``logs``: scalar floats averaged over the epoch by the training loop."""

    loss: torch.Tensor
    denom: float = 1.0
    logs: dict[str, float] = field(default_factory=dict)


@dataclass
class ObjectiveConfig:
    """Base class of objective configs."""

    normalization: str = field(
        default="cell-per-seq",
        metadata={
            "help": "loss normalisation: cell-per-seq (mean over each sequence's cells, then over the batch), "
            "cell-global (mean over all cells of the batch), batch (sum over cells / batch size)"
        },
    )


class Objective:
    """Base class. Subclasses implement ``__call__(model, batch) -> LossOutput``."""

    config_class: type[ObjectiveConfig] = ObjectiveConfig

    def __init__(self, config: ObjectiveConfig, task: TaskData):
        self.config = config
        self.task = task
        self.step_count = 0

    def start_epoch(self, epoch: int, total_epochs: int) -> None:
        """Hook called before each epoch (schedules)."""

    def __call__(self, model: torch.nn.Module, batch: Batch) -> LossOutput:  # pragma: no cover
        raise NotImplementedError


NORMALIZATIONS = ("cell-per-seq", "cell-global", "batch")


def normalize(cell_loss: torch.Tensor, mask: torch.Tensor, mode: str) -> tuple[torch.Tensor, float]:
    """Reduce per-cell losses to a scalar.

    cell_loss: ``(B, T)`` float; mask: ``(B, T)`` bool (active cells). Returns (loss, denominator).
    ``cell-per-seq``: mean over each sequence's active cells, then mean over sequences with at least one
    active cell; ``cell-global``: sum / number of active cells; ``batch``: sum / B.
    """
    cell_loss = torch.where(mask, cell_loss, torch.zeros_like(cell_loss))
    if mode == "cell-per-seq":
        n = mask.sum(1)
        has = n > 0
        per_seq = cell_loss.sum(1)[has] / n[has]
        denom = float(max(int(has.sum()), 1))
        return per_seq.sum() / denom, denom
    if mode == "cell-global":
        denom = float(max(int(mask.sum()), 1))
        return cell_loss.sum() / denom, denom
    if mode == "batch":
        denom = float(cell_loss.shape[0])
        return cell_loss.sum() / denom, denom
    raise ValueError(f"unknown normalization {mode!r}; valid: {', '.join(NORMALIZATIONS)}")
