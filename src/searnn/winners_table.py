"""``searnn report --winners``: the read-out of a tuning grid, one line per family of rows.

A family is the rows of one objective on one task and metric (``mle``, ``token-smoothing``, ...). Its winner is
the row with the best mean **validation** metric; test is not read, so that the choice stays a validation one.
For each option whose value differs between the family's rows (``lr``, ``tok_tau``, ``alpha``, ...) the line
gives the winner's value and the values searched, and flags the winner when it sits at the edge of the range
of a numeric option searched over three or more values (the search should then be extended in that direction:
the best value may lie beyond it). With two values searched any winner is at an edge, which says nothing, so
it is not flagged. The runner-up and the margin say how decisive the choice is; a margin below the seed
spread of the final comparison is no evidence for either value.

| column | meaning |
| --- | --- |
| family | the objective |
| rows | rows of the family with a validation figure |
| winner, valid | the best row on validation and its mean over its seeds |
| runner-up, valid | the second best row (— for a family of one) |
| margin | winner's valid minus the runner-up's (positive means better, for either direction of the metric) |
| winner's values | ``option value [searched values]``, ``edge`` marking a winner at the edge of a range |

Nothing here needs torch.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from searnn.report import config_differences

WINNERS_NOTE = (
    "winners: per objective (family), the row with the best mean validation metric (test not read); "
    "winner's values: the options that differ between the family's rows, with the winner's value and [the values "
    "searched]; edge: the winner is at the end of a numeric range searched over 3 or more values, so the search "
    "should be extended past it; margin: winner minus runner-up on validation, in the better direction."
)


def _mean_valid(group: Any) -> float | None:
    return group.stat("valid").mean


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        return value
    return json.dumps(value)


def option_cell(option: str, winner: Any, groups: Sequence[Any]) -> tuple[str, bool]:
    """``"option value [v1, v2, ...]"`` for the winner among ``groups`` and whether it is at a range's edge."""
    values = {_key(g.runs[0].config.get(option)): g.runs[0].config.get(option) for g in groups if g.runs}
    mine = winner.runs[0].config.get(option)
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values.values())
    ordered = sorted(values.values()) if numeric else list(values.values())
    edge = numeric and len(ordered) >= 3 and mine in (ordered[0], ordered[-1])
    text = f"{option} {_fmt(mine)} [{', '.join(_fmt(v) for v in ordered)}]"
    return (text + " **edge**" if edge else text), edge


def winners_table(groups: Sequence[Any]) -> tuple[str, list[dict[str, Any]]]:
    """Markdown table (one line per family) and its JSON rows. ``groups``: :class:`searnn.report.Group`-like
    objects (``label``, ``task``, ``objective``, ``metric``, ``lower_is_better``, ``runs``, ``stat``), one per
    grid row."""
    families: dict[tuple[str, str, str], list[Any]] = {}
    for g in groups:
        if _mean_valid(g) is not None:
            families.setdefault((g.task, g.metric, g.objective), []).append(g)
    lines = [
        "| family | task | rows | winner | valid | runner-up | valid | margin | winner's values |",
        "| --- | --- | ---: | --- | ---: | --- | ---: | ---: | --- |",
    ]
    rows: list[dict[str, Any]] = []
    for (task, metric, objective), members in families.items():
        sign = -1.0 if members[0].lower_is_better else 1.0
        ranked = sorted(members, key=lambda g: -sign * _mean_valid(g))  # stable: grid order breaks ties
        best, second = ranked[0], (ranked[1] if len(ranked) > 1 else None)
        # the options the family's rows vary (their first runs: within a row only the seed differs, as
        # ``searnn report`` checks before this table)
        varied = config_differences([g.runs[0] for g in members])
        cells, edges = [], []
        for option in varied:
            text, edge = option_cell(option, best, members)
            cells.append(text)
            if edge:
                edges.append(option)
        v1 = _mean_valid(best)
        v2 = _mean_valid(second) if second is not None else None
        margin = None if v2 is None else sign * (v1 - v2)
        lines.append(
            f"| {objective} | {task} | {len(members)} | {best.label} | {v1:.2f} | "
            f"{second.label if second is not None else '—'} | {'—' if v2 is None else f'{v2:.2f}'} | "
            f"{'—' if margin is None else f'{margin:+.2f}'} | {'; '.join(cells) or '—'} |"
        )
        rows.append({
            "family": objective, "task": task, "metric": metric, "rows": len(members), "winner": best.label,
            "valid": v1, "runner_up": second.label if second is not None else None, "runner_up_valid": v2,
            "margin": margin, "at_edge": edges,
            "values": {o: best.runs[0].config.get(o) for o in varied},
        })
    if not rows:
        return "(no row has a validation figure)", rows
    return "\n".join(lines), rows
