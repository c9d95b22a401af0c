"""Baselines of Elbayad et al. (2018, Table 1): uniform label smoothing and entropy regularisation.

* ``label-smoothing`` (Szegedy et al. 2016): ``(1 - alpha) * CE(y*_t) + alpha * CE(u, p)`` with u uniform
  over the vocabulary minus PAD/BOS/UNK; the constant-similarity case of token smoothing (eq. 13).
* ``entropy-reg`` (MLE + gamma H, Pereyra et al. 2017, confidence penalty):
  ``CE(y*_t) - gamma * H(p(. | h*_t))`` with H the entropy of the **full** predicted distribution
  (the authors' ``penalize_confidence`` used the target's probability only, docs/METHODS.md §7.2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from searnn.data.batch import Batch
from searnn.data.task import TaskData
from searnn.errors import ConfigError
from searnn.objectives.base import LossOutput, Objective, ObjectiveConfig, normalize
from searnn.objectives.token_smoothing import (
    TokenSmoothing,
    TokenSmoothingConfig,
    check_normalization,
    check_unit_interval,
)


@dataclass
class LabelSmoothingConfig(ObjectiveConfig):
    """Uniform label smoothing."""

    alpha: float = field(
        default=0.1,
        metadata={"help": "mass moved from the ground-truth token to the uniform distribution over the "
                  "vocabulary (PAD/BOS/UNK excluded); 0 = MLE"},
    )

    def __post_init__(self) -> None:
        check_normalization(self.normalization)
        check_unit_interval("alpha", self.alpha)


class LabelSmoothing(Objective):
    """``(1 - alpha) CE(y*) + alpha CE(uniform)``: token smoothing with a constant similarity (eq. 13, 16)."""

    config_class = LabelSmoothingConfig
    config: LabelSmoothingConfig

    def __init__(self, config: LabelSmoothingConfig, task: TaskData):
        super().__init__(config, task)
        inner = TokenSmoothingConfig(
            normalization=config.normalization, alpha=config.alpha, similarity="uniform", divergence="ce"
        )
        self.inner = TokenSmoothing(inner, task)

    def start_epoch(self, epoch: int, total_epochs: int) -> None:
        self.inner.start_epoch(epoch, total_epochs)

    def state_dict(self) -> dict[str, Any]:
        """The inner token-smoothing objective's state (the uniform similarity has none that changes)."""
        return self.inner.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.inner.load_state_dict(state)

    def __call__(self, model: torch.nn.Module, batch: Batch) -> LossOutput:
        return self.inner(model, batch)


@dataclass
class EntropyRegConfig(ObjectiveConfig):
    """Confidence penalty."""

    gamma: float = field(
        default=0.1,
        metadata={"help": "weight of the entropy bonus: loss = CE - gamma * H(p) per cell (Pereyra et al. "
                  "2017); 0 = MLE"},
    )

    def __post_init__(self) -> None:
        check_normalization(self.normalization)
        if self.gamma < 0:
            raise ConfigError(f"gamma must be >= 0, got {self.gamma}")


class EntropyRegularized(Objective):
    """MLE with a confidence penalty: ``CE(y*_t) - gamma * H(p(. | h*_t))`` per target cell."""

    config_class = EntropyRegConfig
    config: EntropyRegConfig

    def __call__(self, model: torch.nn.Module, batch: Batch) -> LossOutput:
        logits = model(batch.src, batch.src_len, batch.decoder_input)  # (B, T, V)
        mask = batch.tgt_mask
        logp = F.log_softmax(logits.float(), dim=-1)
        nll = -logp.gather(2, batch.tgt[..., None]).squeeze(-1)  # (B, T)
        entropy = -(logp.exp() * logp).sum(-1)  # (B, T)
        cell = nll - self.config.gamma * entropy if self.config.gamma > 0 else nll
        loss, denom = normalize(cell, mask, self.config.normalization)
        with torch.no_grad():
            ent = float((entropy * mask).sum() / mask.sum().clamp(min=1))
        return LossOutput(loss, denom, {"entropy": ent})
