"""Maximum likelihood (teacher forcing): token cross-entropy on the ground truth."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from searnn.data.batch import Batch
from searnn.objectives.base import LossOutput, Objective, ObjectiveConfig, normalize


def token_nll(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-cell negative log-likelihood.

    logits: ``(B, T, V)``; target: ``(B, T)`` long. Returns ``(B, T)``.
    """
    logp = F.log_softmax(logits.float(), dim=-1)
    return -logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)


@dataclass
class MleConfig(ObjectiveConfig):
    """MLE has no options beyond the loss normalisation."""


class MleObjective(Objective):
    """Teacher-forced cross-entropy over every target cell, EOS cell included."""

    config_class = MleConfig

    def __call__(self, model: torch.nn.Module, batch: Batch) -> LossOutput:
        logits = model(batch.src, batch.src_len, batch.decoder_input)  # (B, T, V)
        mask = batch.tgt_mask
        cell = token_nll(logits, batch.tgt)
        loss, denom = normalize(cell, mask, self.config.normalization)
        with torch.no_grad():
            acc = ((logits.argmax(-1) == batch.tgt) & mask).sum().float() / mask.sum().clamp(min=1)
        return LossOutput(loss, denom, {"token_acc": float(acc)})
