"""Learning to search for SeaRNN: roll-in, exploration, roll-outs and the cost-to-go tensor.

The axes stay independent: roll-in policy (:mod:`~searnn.search.rollin`), which (cell, token) pairs are
explored (:mod:`~searnn.search.exploration`), roll-out policy (:mod:`~searnn.search.rollout`), the cost
(:mod:`searnn.costs`) and the cost-sensitive loss (:mod:`searnn.objectives.cost_sensitive`).
:func:`search` runs one batch through all of them and returns the ``(B, T, V)`` cost tensor.
"""

from searnn.search.engine import NEVER_DRAWN, SearchOptions, SearchResult, output_cap, search
from searnn.search.exploration import SAMPLERS, forced_tokens, sample_tokens, select_cells
from searnn.search.rollin import ROLLINS, RollIn, roll_in
from searnn.search.rollout import MIX_PER, ROLLOUTS, Candidates, Completions, complete, draw_learned
from searnn.search.schedules import SCHEDULES, Progress

__all__ = [
    "MIX_PER",
    "NEVER_DRAWN",
    "ROLLINS",
    "ROLLOUTS",
    "SAMPLERS",
    "SCHEDULES",
    "Candidates",
    "Completions",
    "Progress",
    "RollIn",
    "SearchOptions",
    "SearchResult",
    "complete",
    "draw_learned",
    "forced_tokens",
    "output_cap",
    "roll_in",
    "sample_tokens",
    "search",
    "select_cells",
]
