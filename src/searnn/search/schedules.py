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
    """

    def __init__(self) -> None:
        self.epoch = 0
        self.total_epochs = 0
        self.calls_in_epoch = 0
        self.steps_per_epoch = 0

    def start_epoch(self, epoch: int, total_epochs: int) -> None:
        if self.calls_in_epoch > 0:
            self.steps_per_epoch = max(self.steps_per_epoch, self.calls_in_epoch)
        self.epoch = epoch
        self.total_epochs = total_epochs
        self.calls_in_epoch = 0

    def step(self) -> None:
        self.calls_in_epoch += 1

    @property
    def value(self) -> float:
        """Fraction of training done, in ``[0, 1]``."""
        if self.total_epochs <= 0:
            return 0.0
        within = 0.0
        if self.steps_per_epoch > 0:
            within = min(self.calls_in_epoch / self.steps_per_epoch, 1.0)
        return min(max((self.epoch + within) / self.total_epochs, 0.0), 1.0)
