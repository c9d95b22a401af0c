"""``--precision fp32 | bf16 | fp16``: mixed precision of the training step.

* ``fp32``: no autocast (the default; bitwise the behaviour of earlier versions).
* ``bf16``: ``torch.autocast(dtype=bfloat16)`` around the objective (forward, roll-in, roll-outs and the
  loss); parameters, gradients and optimiser state stay fp32. Allowed on CUDA and on CPU (CPU autocast
  works for these models but is rarely faster than fp32 there; it is allowed so that the same command runs
  everywhere).
* ``fp16``: autocast to float16 with a :class:`torch.amp.GradScaler` (dynamic loss scaling; a step whose
  gradients overflow is skipped and the scale lowered). CUDA only: refused on CPU with a one-line error.

Evaluation (greedy / beam decoding) runs in fp32 whatever the option.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from searnn.errors import ConfigError

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(precision: str, device: torch.device) -> None:
    """Refuse combinations that cannot run (``--precision fp16`` without CUDA)."""
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError(f"--precision fp16 needs a CUDA device (this run uses {device}); "
                          "use --precision bf16 or fp32 on CPU")


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """The autocast context of the training step (a null context for ``fp32``)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=DTYPES[precision])


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler | None:
    """A gradient scaler for ``fp16`` (``None`` otherwise)."""
    if precision != "fp16":
        return None
    return torch.amp.GradScaler(device.type)
