"""The optimiser of a run, its learning-rate decay on validation plateaus, and the model-selection comparison."""

from __future__ import annotations

import torch

from searnn.config import RunConfig


class Plateau:
    """Multiply the learning rate by ``factor`` after ``patience`` epochs without validation gain."""

    def __init__(self, optimizer: torch.optim.Optimizer, factor: float, patience: int, min_lr: float):
        self.optimizer, self.factor, self.patience, self.min_lr = optimizer, factor, patience, min_lr
        self.bad_epochs = 0

    def step(self, improved: bool) -> None:
        self.bad_epochs = 0 if improved else self.bad_epochs + 1
        if self.bad_epochs > self.patience:
            for group in self.optimizer.param_groups:
                group["lr"] = max(group["lr"] * self.factor, self.min_lr)
            self.bad_epochs = 0

    def state_dict(self) -> dict[str, int]:
        return {"bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.bad_epochs = state["bad_epochs"]


def make_optimizer(cfg: RunConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    t = cfg.train
    if t.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)


def is_better(value: float, best: float | None, lower_is_better: bool) -> bool:
    if best is None:
        return True
    return value < best if lower_is_better else value > best
