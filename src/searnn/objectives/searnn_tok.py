"""SeaRNN combined with token-level loss smoothing (neither paper tried it).

Each rolled-out cell gets the SeaRNN cost-sensitive loss of its roll-in logits, mixed with the token-level
smoothed loss of Elbayad et al. (2018, eq. 16) centred on the cell's reference token (the ground-truth
token at that position, EOS from the EOS cell on: the token SeaRNN prefers on cost ties; under a
reference roll-in it is exactly the teacher-forced target)::

    loss_t = (1 - tok_alpha) * L_searnn(logits_t, costs_t) + tok_alpha * D(r(. | ref_t) || p(. | h_t))

``tok_alpha = 0`` is plain SeaRNN, exactly. The SeaRNN part brings the task cost of full roll-outs; the
token part spreads mass over tokens similar to the reference one, which the cost cannot see when it was
never rolled out (sampled SeaRNN on large vocabularies).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from searnn.data.task import TaskData
from searnn.objectives.searnn import SearnnConfig, SearnnObjective
from searnn.objectives.token_smoothing import TokenOptions, TokenSmoother, check_unit_interval, mixed_cell_loss
from searnn.search.engine import SearchResult


@dataclass
class SearnnTokConfig(SearnnConfig, TokenOptions):
    """SeaRNN options plus the token-smoothing options, and the weight between them."""

    tok_alpha: float = field(
        default=0.3,
        metadata={"help": "weight of the token-smoothed loss: (1-tok_alpha)*SeaRNN + tok_alpha*D(r||p); "
                  "0 = plain SeaRNN"},
    )

    def __post_init__(self) -> None:
        SearnnConfig.__post_init__(self)
        TokenOptions.__post_init__(self)
        check_unit_interval("tok_alpha", self.tok_alpha)


class SearnnTok(SearnnObjective):
    """SeaRNN + token smoothing (see the module docstring)."""

    config_class = SearnnTokConfig
    config: SearnnTokConfig

    def __init__(self, config: SearnnTokConfig, task: TaskData):
        super().__init__(config, task)
        self.smoother = TokenSmoother(config, task)

    def start_epoch(self, epoch: int, total_epochs: int) -> None:
        super().start_epoch(epoch, total_epochs)
        self.smoother.start_epoch(epoch)

    def state_dict(self) -> dict[str, Any]:
        """SeaRNN's state plus the token smoother's."""
        return {**super().state_dict(), "smoother": self.smoother.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.smoother.load_state_dict(state.get("smoother", {}))

    def cell_losses(
        self, model: torch.nn.Module | None, result: SearchResult, logs: dict[str, float]
    ) -> torch.Tensor:
        """SeaRNN's per-cell losses ``(B, T)`` mixed with the token-smoothed loss of each cell's reference."""
        cell_loss = super().cell_losses(model, result, logs)
        alpha = float(self.config.tok_alpha)
        if alpha == 0:
            return cell_loss
        if model is None:
            raise ValueError("searnn-tok needs the model (token similarities may come from it)")
        logits = result.rollin.logits.float()  # (B, T, V)
        self.smoother.prepare(model, logits.device)
        logp = F.log_softmax(logits, dim=-1)
        tok, _ = mixed_cell_loss(logp, result.reference[:, None, :], self.smoother, 1.0)  # (B, 1, T)
        with torch.no_grad():
            logs.update(self.smoother.stats(result.reference, result.cell_mask))
        return (1 - alpha) * cell_loss + alpha * tok[:, 0]
