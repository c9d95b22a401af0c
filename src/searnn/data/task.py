"""The task interface: a dataset with its vocabularies, splits, metric and default cost.

Each task module (``ocr``, ``chunking``, ``spelling``, ``translation``, ``tsv``) defines a
:class:`TaskConfig` subclass (its options, every field with help text) and a ``load(config) -> TaskData``
function, and is registered in :data:`searnn.data.registry.TASKS`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from searnn.data.batch import Example
from searnn.data.vocab import Vocab

REPO_DATA = Path(__file__).resolve().parents[3] / "data"
"""The ``data/`` folder of the repository (small datasets shipped with searnn)."""


@dataclass
class TaskConfig:
    """Options common to every task."""

    data_dir: str = field(default="", metadata={"help": "dataset directory ('' = the shipped copy)"})
    limit_train: int = field(default=0, metadata={"help": "use only the first N training examples (0 = all)"})
    split_seed: int = field(default=1234, metadata={"help": "seed of the train/validation split"})

    unused_options: ClassVar[tuple[str, ...]] = ()
    """Common options above that the task ignores: left out of its command line (``--help``, and an error
    that says so when given)."""


@dataclass
class TaskData:
    """A loaded task.

    ``src_vocabs``: one vocabulary per source token stream (empty when sources are feature vectors,
    then ``src_feature_dim`` is set). ``fixed_length``: the output has exactly one token per source
    position (OCR, chunking). ``metric``: name in :data:`searnn.metrics.METRICS`; ``cost``: default
    training cost name in :data:`searnn.costs.COSTS`. ``lower_is_better`` refers to ``metric``.
    ``parse_source(line)`` turns one input line (the task's source format) into a source for
    :class:`Example`; ``format_output(ids)`` turns predicted target ids into an output line.
    """

    name: str
    train: list[Example]
    valid: list[Example]
    test: list[Example]
    tgt_vocab: Vocab
    src_vocabs: list[Vocab]
    src_feature_dim: int | None
    fixed_length: bool
    metric: str
    cost: str
    lower_is_better: bool
    parse_source: Callable[[str], list[list[int]] | np.ndarray]
    format_output: Callable[[Sequence[int]], str]
    info: dict = field(default_factory=dict)

    def split(self, name: str) -> list[Example]:
        if name not in ("train", "valid", "test"):
            raise ValueError(f"unknown split {name!r}; valid: train, valid, test")
        return getattr(self, name)

    @property
    def max_tgt_len(self) -> int:
        """Longest target (tokens, without EOS) over all splits."""
        return max(len(ex.tgt) for split in (self.train, self.valid, self.test) for ex in split)
