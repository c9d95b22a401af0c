"""Allowed ranges of the numeric options, checked once for every config section.

:func:`check_value` is called by :func:`searnn.config.build_config` on every value the user gives (YAML or
command line), before the section dataclasses are built. Rules, by option name (names are unique across the
active sections, and an option of the same name means the same thing in every class that has it):

* every ``float`` must be finite (``nan`` and ``inf`` are refused);
* an option listed in :data:`RANGES` must lie in its interval;
* any other ``int`` or ``float`` must be non-negative.

Messages name the option as it is typed on the command line (``--lr-decay``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from searnn.errors import ConfigError


def flag(name: str) -> str:
    """The command-line spelling of option ``name``: ``lr_schedule`` -> ``--lr-schedule``."""
    return "--" + name.replace("_", "-")


@dataclass(frozen=True)
class Range:
    """An interval ``low .. high``; ``low_open`` / ``high_open`` exclude the bound, ``None`` = unbounded."""

    low: float | None = 0.0
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def contains(self, value: float) -> bool:
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            return False
        return True

    def describe(self) -> str:
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        left = "(" if self.low_open else "["
        right = ")" if self.high_open else "]"
        return f"in {left}{self.low:g}, {self.high:g}{right}"


POSITIVE = Range(0.0, low_open=True)
AT_LEAST_ONE = Range(1.0)
PROBABILITY = Range(0.0, 1.0)
FRACTION = Range(0.0, 1.0, high_open=True)
DECAY = Range(0.0, 1.0, low_open=True)

RANGES: dict[str, Range] = {
    # training loop
    "lr": POSITIVE,
    "lr_decay": DECAY,
    "momentum": FRACTION,
    "epochs": AT_LEAST_ONE,
    "batch_size": AT_LEAST_ONE,
    "eval_batch_size": AT_LEAST_ONE,
    "beam": AT_LEAST_ONE,
    "test_beam": Range(0.0),  # 0 = no beam test
    "len_norm_choices": Range(0.0),  # each element, as --len-norm
    "max_decode_len": AT_LEAST_ONE,
    "threads": AT_LEAST_ONE,
    "nproc": AT_LEAST_ONE,
    # model
    "emb_dim": AT_LEAST_ONE,
    "hidden": AT_LEAST_ONE,
    "enc_layers": AT_LEAST_ONE,
    "dec_layers": AT_LEAST_ONE,
    "tgt_emb_dim": AT_LEAST_ONE,
    "dropout": FRACTION,
    "heads": AT_LEAST_ONE,
    "ffn_dim": AT_LEAST_ONE,
    # tasks
    "valid_fraction": FRACTION,
    "test_fold": Range(0.0, 9.0),
    "noise": PROBABILITY,
    "segment_len": AT_LEAST_ONE,
    "min_count": AT_LEAST_ONE,
    # objectives
    "rollin_ref_prob": PROBABILITY,
    "rollout_ref_prob": PROBABILITY,
    "num_tokens": AT_LEAST_ONE,
    "rollout_batch_size": AT_LEAST_ONE,
    "bias_temperature": AT_LEAST_ONE,
    "max_len_ratio": AT_LEAST_ONE,
    "tok_tau": POSITIVE,
    "top_k": AT_LEAST_ONE,
    "train_dim": AT_LEAST_ONE,
    "train_window": AT_LEAST_ONE,
    "proposal_tau": POSITIVE,
    "num_samples": AT_LEAST_ONE,
    "alpha": PROBABILITY,
    "alpha1": PROBABILITY,
    "alpha2": PROBABILITY,
    "tok_alpha": PROBABILITY,
}

UNBOUNDED: frozenset[str] = frozenset({"seed", "split_seed"})
"""Numeric options without a range (any integer is a valid seed)."""


def check_value(name: str, value: Any) -> None:
    """Raise :class:`ConfigError` when the (already coerced) ``value`` of option ``name`` is out of range."""
    if isinstance(value, (list, tuple)):  # a list option (--len-norm-choices): every element
        for item in value:
            check_value(name, item)
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{flag(name)} must be a finite number, got {value}")
    if name in UNBOUNDED:
        return
    allowed = RANGES.get(name, Range(0.0))
    if not allowed.contains(float(value)):
        raise ConfigError(f"{flag(name)} must be {allowed.describe()}, got {value:g}")
