"""Registered training objectives: name -> Objective class (its ``config_class`` holds the options)."""

from __future__ import annotations

from searnn.objectives.base import LossOutput, Objective, ObjectiveConfig, normalize
from searnn.objectives.mle import MleObjective
from searnn.objectives.searnn import SearnnObjective

OBJECTIVES: dict[str, type[Objective]] = {
    "mle": MleObjective,
    "searnn": SearnnObjective,
}

__all__ = ["OBJECTIVES", "LossOutput", "Objective", "ObjectiveConfig", "normalize"]
