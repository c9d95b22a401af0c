"""Beam-search test scoring with the length normalisation chosen on validation (``--test-beam K``).

After training, :meth:`searnn.train.Trainer.finish` scores the best checkpoint on test greedily (``test`` in
``results.json``, unchanged) and, with ``--test-beam K`` (K >= 1), also as the papers evaluated: it decodes
validation with beam K once for every length-normalisation exponent of ``--len-norm-choices`` (``alpha`` of
:func:`searnn.decoding.beam.length_penalty`), keeps the best one on validation (the first of equals, in the
order given) and decodes test **once** with it. The outcome is ``results.json``'s ``test_beam``:

``{"beam": K, "len_norm": chosen, "valid": {metric: v}, "test": {metric: t}, "valid_by_len_norm":
{"0.0": v0, ...}, "signature": ..., "test_details": ...}``

and the test decoding is saved as ``test_beam_hyps.txt`` (one line per test example, as ``test_hyps.txt``).
Both options only change evaluation, so they may change when a run is resumed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch

from searnn.config import TrainConfig
from searnn.data.task import TaskData

Evaluate = Callable[..., dict[str, Any]]


def len_norm_choices(cfg: TrainConfig) -> list[float]:
    """The exponents the beam test tries, in the order given, each once (the keys of ``valid_by_len_norm``)."""
    return list(dict.fromkeys(float(c) for c in cfg.len_norm_choices))


def choose_len_norm(scores: dict[float, float], lower_is_better: bool) -> float:
    """The choice with the best validation score, the first of equal ones (``scores`` in the order tried)."""
    if not scores:
        raise ValueError("no length-normalisation choice was scored")
    return (min if lower_is_better else max)(scores, key=scores.__getitem__)


def beam_test(model: torch.nn.Module, task: TaskData, cfg: TrainConfig, device: torch.device,
              evaluate: Evaluate | None = None) -> dict[str, Any]:
    """Choose ``len_norm`` among ``cfg.len_norm_choices`` on validation with beam ``cfg.test_beam``, then score
    test once with it (module docstring). Returns the ``test_beam`` record plus ``"hyps"`` (the test decoding,
    id lists in test order). ``evaluate``: the scoring function (default :func:`searnn.evaluate.evaluate`)."""
    if evaluate is None:
        from searnn.evaluate import evaluate as default_evaluate

        evaluate = default_evaluate
    metric = task.metric
    by_choice: dict[float, float] = {}
    for choice in len_norm_choices(cfg):
        beam_cfg = dataclasses.replace(cfg, beam=cfg.test_beam, len_norm=choice)
        by_choice[choice] = float(evaluate(model, task, "valid", beam_cfg, device)[metric])
    chosen = choose_len_norm(by_choice, task.lower_is_better)
    test = evaluate(model, task, "test", dataclasses.replace(cfg, beam=cfg.test_beam, len_norm=chosen), device,
                    keep_hyps=True)
    return {
        "beam": cfg.test_beam,
        "len_norm": chosen,
        "valid": {metric: by_choice[chosen]},
        "test": {metric: test[metric]},
        "valid_by_len_norm": {str(c): v for c, v in by_choice.items()},
        "signature": test["signature"],
        "test_details": test["details"],
        "hyps": test["hyps"],
    }
