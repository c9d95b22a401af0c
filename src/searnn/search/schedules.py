"""Schedules of the roll-in reference probability over training (scheduled sampling).

A schedule maps the training progress ``x`` in ``[0, 1]`` (fraction of all training steps done) and
the configured probability ``p`` to the probability used at that step:

* ``constant``: ``p``;
* ``linear``: ``p * (1 - x)``;
* ``sigmoid``: ``p / (1 + exp(12 x - 6))``, the reference code's inverse-sigmoid decay (about ``p`` at
  the start, about 0 at the end).
"""

from __future__ import annotations

import math
from collections.abc import Callable


def constant(p: float, progress: float) -> float:
    return p


def linear(p: float, progress: float) -> float:
    return p * (1.0 - min(max(progress, 0.0), 1.0))


def sigmoid(p: float, progress: float) -> float:
    x = min(max(progress, 0.0), 1.0)
    return p / (1.0 + math.exp(12.0 * x - 6.0))


SCHEDULES: dict[str, Callable[[float, float], float]] = {
    "constant": constant,
    "linear": linear,
    "sigmoid": sigmoid,
}
"""Roll-in reference-probability schedules by name (``SearnnConfig.rollin_schedule``)."""


class Progress:
    """Tracks training progress from the objective's epoch hook and its call counter.

    ``start_epoch(epoch, total_epochs)`` is called before each epoch; ``step()`` on every batch. The
    number of batches per epoch is learnt from the first epoch, so during epoch 0 the progress only
    moves at the epoch boundary; afterwards it moves per batch. Without any ``start_epoch`` call the
    progress stays 0 (a schedule then acts as ``constant``).

    Resumption: :meth:`state_dict` holds every counter. A ``start_epoch`` call for the epoch the state
    was saved in (a run resumed mid-epoch, or before the first batch of an epoch) keeps the batches already
    counted in it, so a resumed run sees the same progress at every batch as an uninterrupted one.
    """

    def __init__(self) -> None:
        self.epoch = 0
        self.total_epochs = 0
        self.calls_in_epoch = 0
        self.steps_per_epoch = 0
        self.started = False  # start_epoch(self.epoch, ...) has run (its batches are in calls_in_epoch)

    def start_epoch(self, epoch: int, total_epochs: int) -> None:
        if self.started and epoch == self.epoch:  # re-entering the epoch of a restored state: keep its count
            self.total_epochs = total_epochs
            return
        if self.calls_in_epoch > 0:
            self.steps_per_epoch = max(self.steps_per_epoch, self.calls_in_epoch)
        self.epoch = epoch
        self.total_epochs = total_epochs
        self.calls_in_epoch = 0
        self.started = True

    def step(self) -> None:
        self.calls_in_epoch += 1

    def unstep(self) -> None:
        """Undo :meth:`step` (the batch it counted was not trained: interrupted or failed)."""
        self.calls_in_epoch = max(self.calls_in_epoch - 1, 0)

    @property
    def value(self) -> float:
        """Fraction of training done, in ``[0, 1]``."""
        if self.total_epochs <= 0:
            return 0.0
        within = 0.0
        if self.steps_per_epoch > 0:
            within = min(self.calls_in_epoch / self.steps_per_epoch, 1.0)
        return min(max((self.epoch + within) / self.total_epochs, 0.0), 1.0)

    def state_dict(self) -> dict[str, int | bool]:
        """Every counter (``last.pt`` holds it through the objective's ``state_dict``)."""
        return {
            "epoch": self.epoch,
            "total_epochs": self.total_epochs,
            "calls_in_epoch": self.calls_in_epoch,
            "steps_per_epoch": self.steps_per_epoch,
            "started": self.started,
        }

    def load_state_dict(self, state: dict[str, int | bool]) -> None:
        """Restore :meth:`state_dict`; a state of older checkpoints (only ``steps_per_epoch``) restores that."""
        self.epoch = int(state.get("epoch", 0))
        self.total_epochs = int(state.get("total_epochs", 0))
        self.calls_in_epoch = int(state.get("calls_in_epoch", 0))
        self.steps_per_epoch = int(state.get("steps_per_epoch", 0))
        self.started = bool(state.get("started", False))
