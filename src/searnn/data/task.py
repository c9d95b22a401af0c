"""The task interface: a dataset with its vocabularies, splits, metric and default cost.

Each task module (``ocr``, ``chunking``, ``spelling``, ``translation``, ``tsv``) defines a
:class:`TaskConfig` subclass (its options, every field with help text) and a ``load(config) -> TaskData``
function, and is registered in :data:`searnn.data.registry.TASKS`.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from searnn.data.batch import Example
from searnn.data.vocab import Vocab

_CHECKOUT_DATA = Path(__file__).resolve().parents[3] / "data"


def shipped_data_dir() -> Path:
    """The folder of the shipped datasets: the repository's ``data/`` in a source checkout (or an editable
    install), else the ``searnn_data`` package that a regular install (``pip install .``, a wheel) puts
    next to ``searnn`` in site-packages (pyproject maps it to the repository's ``data/``)."""
    if _CHECKOUT_DATA.is_dir():
        return _CHECKOUT_DATA
    try:
        spec = importlib.util.find_spec("searnn_data")
    except (ImportError, ValueError):
        spec = None
    if spec is not None:
        # A namespace package (data/ holds no __init__.py): its folder is its search location.
        for location in spec.submodule_search_locations or []:
            if Path(location).is_dir():
                return Path(location)
        resource = importlib.resources.files("searnn_data")
        if isinstance(resource, Path):
            return resource
    return _CHECKOUT_DATA


REPO_DATA = shipped_data_dir()
"""The folder of the small datasets shipped with searnn (see :func:`shipped_data_dir`)."""


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
