"""``searnn report --diagnostics``: what the smoothed targets and the model looked like during training.

The loss-smoothing objectives log, per epoch, averages over that epoch's training batches in
``metrics.jsonl`` (:mod:`searnn.objectives.token_smoothing`, :mod:`searnn.objectives.seq_smoothing`). This
table reads them at each run's best-on-validation epoch (the checkpoint that is tested) and averages them over
the seeds of a row. One line per row that logged at least one of them:

| column | from | meaning |
| --- | --- | --- |
| GT mass | computed | the target's mass on the reference token, ``(1 - a) + a * self mass``, with ``a`` the
  token target's weight (``alpha``; Tok-Seq: ``alpha2``); MLE and rows without a token target: — |
| self mass | ``tok_self_mass`` | mass the smoothed token distribution r itself leaves on the reference |
| top-1 wrong | ``tok_top1_wrong`` | training cells whose argmax is not the reference |
| top-1 neighbour | ``tok_top1_neighbour`` | cells whose argmax is not the reference but one of its
  similarity neighbours (the token target's support; label smoothing: any token) |
| distance | ``seq_distance`` | mean Hamming (or edit) distance of the sampled sequences to the reference |
| ESS | ``seq_ess`` | mean effective sample size ``1 / sum w^2`` of the importance weights per source |
| max weight | ``seq_w_max`` | mean largest importance weight per source |

Rates are printed as percentages. Nothing here needs torch.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from searnn.run_results import METRICS_LOG, RunResult, epoch_records

COLUMNS = (
    ("self mass", "tok_self_mass", True),
    ("top-1 wrong", "tok_top1_wrong", True),
    ("top-1 neighbour", "tok_top1_neighbour", True),
    ("distance", "seq_distance", False),
    ("ESS", "seq_ess", False),
    ("max weight", "seq_w_max", False),
)
"""(header, metrics.jsonl key, printed as a percentage)."""

TOKEN_WEIGHT = {"token-smoothing": "alpha", "label-smoothing": "alpha", "tok-seq": "alpha2"}
"""Objective -> the option weighing its token-level smoothed target against the reference's Dirac
(``searnn-tok`` mixes the smoothed target with the SeaRNN loss, not with a Dirac: no GT mass)."""

DIAGNOSTICS_NOTE = (
    "diagnostics: training logs of each run's best-on-validation epoch (means over that epoch's batches), "
    "averaged over the row's seeds; GT mass = (1 - a) + a * self mass, a = the token target's weight (alpha; "
    "Tok-Seq: alpha2); self mass: what the smoothed token distribution leaves on the reference; top-1 wrong / "
    "neighbour: training cells whose argmax is not the reference / is one of its similarity neighbours; "
    "distance, ESS, max weight: the sampled sequences' distance to the reference and their importance weights' "
    "effective sample size and largest weight, per source; —: not logged by the row's objective."
)


def run_diagnostics(run: RunResult) -> dict[str, float]:
    """The logged diagnostics of ``run`` at its best epoch (the last epoch when the best is not recorded), plus
    ``gt_mass`` where it can be computed. Empty when the run logged none (or has no ``metrics.jsonl``); a
    malformed ``metrics.jsonl`` is a :class:`searnn.errors.DataError` naming its file and line."""
    if not (run.run_dir / METRICS_LOG).is_file():
        return {}
    records = epoch_records(run.run_dir)
    if not records:
        return {}
    epoch = run.best_epoch if run.best_epoch in records else max(records)
    rec = records[epoch]
    out = {key: float(rec[key]) for _, key, _ in COLUMNS if isinstance(rec.get(key), (int, float))}
    weight = run.config.get(TOKEN_WEIGHT.get(run.objective, ""))
    if "tok_self_mass" in out and isinstance(weight, (int, float)):
        out["gt_mass"] = (1.0 - float(weight)) + float(weight) * out["tok_self_mass"]
    return out


def diagnostics_table(groups: Sequence[Any]) -> tuple[str, list[dict[str, Any]]]:
    """Markdown table (one line per group that logged a diagnostic) and its JSON rows (per-seed values too).
    ``groups``: :class:`searnn.report.Group`-like objects (``label``, ``runs``)."""
    header = "| row | objective | n | GT mass | " + " | ".join(name for name, _, _ in COLUMNS) + " |"
    lines = [header, "| --- | --- | ---: |" + " ---: |" * (len(COLUMNS) + 1)]
    rows: list[dict[str, Any]] = []
    for group in groups:
        per_run = [(run, run_diagnostics(run)) for run in group.runs]
        per_run = [(run, d) for run, d in per_run if d]
        if not per_run:
            continue
        means: dict[str, float] = {}
        for key in ("gt_mass", *(key for _, key, _ in COLUMNS)):
            values = [d[key] for _, d in per_run if key in d]
            if values:
                means[key] = statistics.fmean(values)
        cells = [_format(means.get("gt_mass"), True)]
        cells += [_format(means.get(key), pct) for _, key, pct in COLUMNS]
        lines.append(f"| {group.label} | {group.objective} | {len(per_run)} | " + " | ".join(cells) + " |")
        rows.append({"row": group.label, "objective": group.objective, "n": len(per_run), "mean": means,
                     "seeds": [{"seed": run.seed, "run_dir": str(run.run_dir), **d} for run, d in per_run]})
    if not rows:
        return "(no row logged smoothing diagnostics)", rows
    return "\n".join(lines), rows


def _format(value: float | None, percent: bool) -> str:
    if value is None:
        return "—"
    return f"{100 * value:.1f}%" if percent else f"{value:.2f}"
