"""Small file and split helpers shared by the task loaders.

* :func:`open_text` / :func:`read_lines` read plain or gzip-compressed UTF-8 text transparently (gzip is
  recognised by its magic bytes, not by the file name);
* :func:`resolve_data_dir` / :func:`find_file` locate a dataset directory and its files, raising a
  :class:`~searnn.errors.DataError` that says what to pass when something is missing;
* :func:`holdout_split` and :func:`seeded_subset` draw deterministic (seeded) index subsets;
* :func:`apply_limit` implements ``TaskConfig.limit_train``;
* :func:`no_gc` pauses the cyclic garbage collector while many small objects are built;
* :func:`token_stream` turns token ids into the ``K = 1`` source layout of :class:`~searnn.data.batch.Example`.
"""

from __future__ import annotations

import gc
import gzip
import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TypeVar

import numpy as np

from searnn.data.batch import Example
from searnn.data.task import REPO_DATA
from searnn.data.vocab import Vocab
from searnn.errors import ConfigError, DataError

T = TypeVar("T")

_GZIP_MAGIC = b"\x1f\x8b"


def open_text(path: str | Path) -> IO[str]:
    """Open ``path`` for reading as UTF-8 text, decompressing it if it is gzip data.

    A leading UTF-8 byte-order mark (as Windows editors write) is removed: it never becomes part of a token."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            magic = fh.read(2)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, expected a text file") from None
    except PermissionError:
        raise DataError(f"{path}: permission denied") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    if magic == _GZIP_MAGIC:
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return path.open("r", encoding="utf-8-sig", newline="")


def read_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """Yield ``(lineno, line)`` (1-based line numbers, line without its ``\\n`` / ``\\r\\n``).

    Undecodable bytes and corrupt gzip streams raise :class:`DataError` naming the file (and line).
    """
    lineno = 0
    try:
        with open_text(path) as fh:
            for lineno, line in enumerate(fh, start=1):
                yield lineno, line.rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not valid UTF-8 text near line {lineno + 1} ({exc.reason})") from None
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None


def resolve_data_dir(data_dir: str, shipped: str, expects: str) -> Path:
    """The dataset directory: ``data_dir`` or, when it is ``''``, the shipped copy ``REPO_DATA/shipped``.

    ``expects`` describes the files the directory must hold (used in the error message).
    """
    path = Path(data_dir).expanduser() if data_dir else REPO_DATA / shipped
    if path.exists() and not path.is_dir():
        raise DataError(f"--data-dir {str(path)!r} is a file; pass --data-dir DIR (a directory) containing {expects}")
    if not path.is_dir():
        where = f"data directory {str(path)!r}" if data_dir else f"shipped data directory {str(path)!r}"
        raise DataError(f"{where} not found; pass --data-dir DIR containing {expects}")
    return path


def find_file(directory: Path, names: Sequence[str], expects: str) -> Path:
    """The first existing file among ``names`` (each also tried with a ``.gz`` suffix) in ``directory``.

    Raises :class:`DataError` listing what was looked for, and what to pass, when none exists.
    """
    for name in names:
        for candidate in (directory / name, directory / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    tried = ", ".join(f"{n}[.gz]" for n in names)
    raise DataError(f"{directory}: none of {tried} found; pass --data-dir DIR containing {expects}")


def holdout_split(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Split ``range(n)`` into ``(kept, held_out)`` index lists, each in increasing order.

    ``held_out`` holds ``round(n * fraction)`` indices drawn without replacement by a generator seeded
    with ``seed`` (so the split only depends on ``n``, ``fraction`` and ``seed``).
    """
    if not 0.0 <= fraction < 1.0:
        raise ConfigError(f"valid_fraction must be in [0, 1), got {fraction}")
    k = int(round(n * fraction))
    perm = np.random.default_rng(seed).permutation(n)
    held = np.sort(perm[:k]).tolist()
    held_set = set(held)
    return [i for i in range(n) if i not in held_set], held


def seeded_subset(items: Sequence[T], size: int, seed: int) -> list[T]:
    """``size`` items drawn without replacement (seeded), kept in their original order; all if ``size`` is 0."""
    if size <= 0 or size >= len(items):
        return list(items)
    chosen = np.sort(np.random.default_rng(seed).choice(len(items), size=size, replace=False))
    return [items[i] for i in chosen.tolist()]


def apply_limit(items: list[T], limit: int) -> list[T]:
    """The first ``limit`` items (all when ``limit`` is 0)."""
    if limit < 0:
        raise ConfigError(f"limit_train must be >= 0, got {limit}")
    return items[:limit] if limit else items


_SINGLETONS: list[list[int]] = []


def token_stream(ids: Sequence[int]) -> list[list[int]]:
    """Token ids -> the one-stream source layout ``[[id], [id], ...]``.

    The inner one-element lists are shared between examples (to keep large datasets small in memory):
    treat sources as read-only.
    """
    if not ids:
        return []
    top = max(ids)
    if top >= len(_SINGLETONS):
        _SINGLETONS.extend([i] for i in range(len(_SINGLETONS), top + 1))
    table = _SINGLETONS
    return [table[i] for i in ids]


@contextmanager
def no_gc() -> Iterator[None]:
    """Pause Python's cyclic garbage collector inside the block (restored afterwards).

    Building hundreds of thousands of :class:`~searnn.data.batch.Example` objects triggers repeated full
    collections that can more than double the loading time; the objects built here hold no cycles.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


Row = tuple[int, list[str], list[str]]
"""A tokenised pair with its 1-based line number: ``(line, source tokens, target tokens)``."""


def pair_examples(
    rows: dict[str, list[Row]], min_count: int, limit_train: int
) -> tuple[Vocab, Vocab, list[Example], dict[str, list[Example]]]:
    """Word vocabularies (from the training rows, ``min_count``) and examples of tokenised text pairs.

    ``rows`` maps ``train``, ``valid``, ``test`` to rows. Validation and test examples keep their reference
    words in ``meta['ref_tokens']`` (so metrics see the real words, not UNK) and their ``line``. Returns
    ``(src_vocab, tgt_vocab, train, {"valid": ..., "test": ...})``.
    """
    src_vocab = Vocab.build((s for _, s, _ in rows["train"]), min_count=min_count)
    tgt_vocab = Vocab.build((t for _, _, t in rows["train"]), min_count=min_count)
    with no_gc():
        train = [
            Example(src=token_stream(src_vocab.encode(s)), tgt=tgt_vocab.encode(t))
            for _, s, t in apply_limit(rows["train"], limit_train)
        ]
        held = {
            split: [
                Example(src=token_stream(src_vocab.encode(s)), tgt=tgt_vocab.encode(t),
                        meta={"ref_tokens": t, "line": i})
                for i, s, t in rows[split]
            ]
            for split in ("valid", "test")
        }
    return src_vocab, tgt_vocab, train, held
