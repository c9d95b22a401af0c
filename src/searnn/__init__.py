"""searnn: sequence-to-sequence models trained with losses that know the test metric.

Implements SeaRNN (Leblond et al., ICLR 2018) and token- and sequence-level loss smoothing
(Elbayad et al., ACL 2018) on an RNN or Transformer encoder-decoder, one training loop and batched costs.

Python API (README "Python API"): the loss objects (:class:`SearnnLoss`, :class:`TokenSmoothingLoss`, ... from
:mod:`searnn.api`), :func:`make_cost`, :mod:`searnn.decode` (``greedy`` / ``beam``), the step protocol
(:mod:`searnn.protocol`) that any model follows to use them and its conformance check
(:func:`searnn.testing.check_model`). ``import searnn`` stays light: these names load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "SearnnLoss": "searnn.api",
    "SearnnTokLoss": "searnn.api",
    "TokenSmoothingLoss": "searnn.api",
    "SeqSmoothingLoss": "searnn.api",
    "TokSeqLoss": "searnn.api",
    "MleLoss": "searnn.api",
    "LabelSmoothingLoss": "searnn.api",
    "EntropyRegLoss": "searnn.api",
    "make_loss": "searnn.api",
    "metric": "searnn.api",
    "sequence_cost": "searnn.api",
    "LossOutput": "searnn.objectives.base",
    "make_cost": "searnn.costs",
    "Vocab": "searnn.data.vocab",
    "StepModel": "searnn.protocol",
    "State": "searnn.protocol",
    "check_model": "searnn.testing",
}
_SUBMODULES = ("api", "costs", "decode", "metrics", "protocol", "testing", "models", "decoding", "objectives")

__all__ = sorted([*_LAZY, *_SUBMODULES, "__version__"])


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        module = importlib.import_module(f"searnn.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'searnn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
