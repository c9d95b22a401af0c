"""Registered training objectives: name -> Objective class (its ``config_class`` holds the options)."""

from __future__ import annotations

from searnn.objectives.base import LossOutput, Objective, ObjectiveConfig, normalize
from searnn.objectives.baselines import EntropyRegularized, LabelSmoothing
from searnn.objectives.mle import MleObjective
from searnn.objectives.searnn import SearnnObjective
from searnn.objectives.searnn_tok import SearnnTok
from searnn.objectives.seq_smoothing import SeqSmoothing, TokSeq
from searnn.objectives.token_smoothing import TokenSmoothing

OBJECTIVES: dict[str, type[Objective]] = {
    "mle": MleObjective,
    "searnn": SearnnObjective,
    "searnn-tok": SearnnTok,
    "token-smoothing": TokenSmoothing,
    "seq-smoothing": SeqSmoothing,
    "tok-seq": TokSeq,
    "label-smoothing": LabelSmoothing,
    "entropy-reg": EntropyRegularized,
}

__all__ = ["OBJECTIVES", "LossOutput", "Objective", "ObjectiveConfig", "normalize"]
