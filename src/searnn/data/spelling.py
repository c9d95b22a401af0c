"""Synthetic spelling correction (Bahdanau et al. 2017 task; docs/METHODS.md §6.2).

Text: ``sentences.{train,valid,test}.txt[.gz]``, one sentence per line. The shipped copy
(``data/spelling_gutenberg``) is a Project Gutenberg selection standing in for the One Billion Word
corpus used by the papers (see its SOURCE.md): 65,522 / 669 / 669 sentences.

**Alphabet (43 symbols).** Text is lowercased and every character mapped to one of 43 symbols
(:data:`ALPHABET`):

* the space (any whitespace character maps to it) -- 1;
* the letters ``a``-``z`` -- 26;
* the digits ``0``-``9`` -- 10;
* the 5 most frequent other characters of the shipped training text after lowercasing, measured once and
  fixed here: ``,`` (114,202) ``.`` (57,986) ``"`` (18,762) ``-`` (15,924) ``;`` (15,798); the next ones,
  left out, were ``'`` 12,771, ``:`` 11,706, ``?`` 7,857, ``!`` 5,201 -- 5;
* ``#``, the unknown symbol, which every other character becomes (``#`` itself never occurs in the
  corpus) -- 1.

1 + 26 + 10 + 5 + 1 = 43, matching the paper's A = 43 (the actor-critic code used the same 26 + 10 + space +
unknown ``#`` core). The vocabulary is the four specials then these 43 symbols; the specials' UNK id is never
produced by the loader (``format_output`` prints it as ``#``). Sources and targets share the same :class:`Vocab` object.

**Segments.** Each (stripped, mapped) sentence is cut into consecutive, non-overlapping segments of
``segment_len`` characters (the paper's T = 10); the last segment of a sentence keeps the remaining
1..``segment_len`` characters (it is kept even when shorter), so the segments of a sentence, concatenated, give
the whole sentence back. Segments do not cross sentence boundaries. ``Example.meta`` holds ``sentence`` (line
index in its file, 0-based, among non-blank lines) and ``offset`` (first character of the segment).
Blank lines are skipped.

**Noise.** Each character of a segment is, independently with probability ``noise``, replaced by a symbol
drawn uniformly from the 43 (the drawn symbol may equal the original one, so the expected fraction of changed
characters is ``noise * 42 / 43``); there are no insertions or deletions, so source and target have the same
length. Source = noisy text, target = clean text. The noise is drawn **once** per split from a generator seeded
with ``(split_seed, split)`` over the split's whole text, so every split -- training included -- is a fixed,
deterministic dataset (noise is *not* redrawn per epoch), and a segment's noise does not depend on
``train_size`` or ``limit_train``.

**Training subset.** ``train_size`` > 0 keeps that many training segments, drawn without replacement with a
generator seeded by ``split_seed`` and kept in text order; 0 keeps all (752,530 segments of at most 10
characters for the shipped text: about 4 s and 0.6 GB of memory). ``limit_train`` then keeps the first N.

The output is not forced to the source length (``fixed_length=False``: the metric is an edit distance, and
the decoder stops at EOS). Metric ``edit`` (Levenshtein distance / reference length), cost ``edit``.

``parse_source(line)``: the raw noisy text, lowercased and mapped to the alphabet as above (not segmented).
``format_output(ids)``: the symbols joined without separators.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from searnn.data.batch import Example
from searnn.data.io import (
    apply_limit,
    find_file,
    no_gc,
    read_lines,
    resolve_data_dir,
    seeded_subset,
    token_stream,
)
from searnn.data.task import TaskConfig, TaskData
from searnn.data.vocab import SPECIALS, UNK, Vocab
from searnn.errors import ConfigError, DataError

UNKNOWN_SYMBOL = "#"
PUNCTUATION = (",", ".", '"', "-", ";")
ALPHABET: tuple[str, ...] = (
    (" ",) + tuple(string.ascii_lowercase) + tuple(string.digits) + PUNCTUATION + (UNKNOWN_SYMBOL,)
)
"""The 43 symbols, in vocabulary order (ids ``4 .. 46``)."""

SPLITS = ("train", "valid", "test")
EXPECTS = "sentences.train.txt[.gz], sentences.valid.txt[.gz] and sentences.test.txt[.gz] (one sentence per line)"


@dataclass
class SpellingConfig(TaskConfig):
    """Options of the spelling-correction task."""

    segment_len: int = field(
        default=10, metadata={"help": "characters per segment (the paper's T); sentences are cut into segments"}
    )
    noise: float = field(
        default=0.3, metadata={"help": "probability that a character is replaced by a uniformly drawn symbol"}
    )
    train_size: int = field(
        default=0, metadata={"help": "number of training segments to keep (seeded subset; 0 = all)"}
    )


def alphabet_vocab() -> Vocab:
    """The shared source/target vocabulary: the specials then the 43 :data:`ALPHABET` symbols."""
    return Vocab(ALPHABET)


_VOCAB = alphabet_vocab()
_UNKNOWN_ID = _VOCAB.stoi[UNKNOWN_SYMBOL]
_FIRST_ID = len(SPECIALS)


_ASCII_TABLE = np.full(128, _UNKNOWN_ID, dtype=np.int64)
for _c in range(128):
    if chr(_c) in _VOCAB.stoi:
        _ASCII_TABLE[_c] = _VOCAB.stoi[chr(_c)]
    elif chr(_c).isspace():
        _ASCII_TABLE[_c] = _VOCAB.stoi[" "]


def map_ids(text: str) -> np.ndarray:
    """Lowercase ``text`` and map each character to its alphabet id: ``(len,)`` int64 array.

    Whitespace characters become the space, characters outside the alphabet the unknown symbol ``#``.
    """
    codes = np.frombuffer(text.lower().encode("utf-32-le"), dtype=np.uint32)
    ids = _ASCII_TABLE[np.minimum(codes, 127)]
    wide = codes >= 128
    if wide.any():
        space = _VOCAB.stoi[" "]
        ids[wide] = [space if chr(c).isspace() else _UNKNOWN_ID for c in codes[wide].tolist()]
    return ids


def map_text(text: str) -> list[int]:
    """:func:`map_ids` as a list."""
    return map_ids(text).tolist()


def add_noise(ids: np.ndarray, p: float, rng: np.random.Generator) -> np.ndarray:
    """Replace each id, with probability ``p``, by one drawn uniformly from the alphabet (may be the same)."""
    replace = rng.random(ids.shape[0]) < p
    drawn = rng.integers(_FIRST_ID, _FIRST_ID + len(ALPHABET), size=ids.shape[0])
    return np.where(replace, drawn, ids)


Segment = tuple[int, int, int, int]
"""``(sentence, offset in the sentence, start, end)``; ``start:end`` index the split's flat id arrays."""


def _read_split(path: Path, split: str, cfg: SpellingConfig) -> tuple[np.ndarray, np.ndarray, list[Segment]]:
    """``(clean ids, noisy ids, segments)`` of one file, the ids of all its sentences concatenated."""
    sentences: list[str] = []
    for _, line in read_lines(path):
        text = line.strip().lower()
        if text:
            sentences.append(text)
    if not sentences:
        raise DataError(f"{path}: no sentences found; expected one sentence per line")
    clean = map_ids("".join(sentences))
    noisy = add_noise(clean, cfg.noise, np.random.default_rng([cfg.split_seed, SPLITS.index(split)]))
    t = cfg.segment_len
    segments: list[Segment] = []
    start = 0
    for k, text in enumerate(sentences):
        n = len(text)
        segments.extend((k, off, start + off, start + min(off + t, n)) for off in range(0, n, t))
        start += n
    return clean, noisy, segments


def _examples(clean: np.ndarray, noisy: np.ndarray, segments: Sequence[Segment]) -> list[Example]:
    clean_l = clean.tolist()
    noisy_src = token_stream(noisy.tolist())  # sliced per segment below (shares the inner lists)
    return [
        Example(src=noisy_src[a:b], tgt=clean_l[a:b], meta={"sentence": k, "offset": off})
        for k, off, a, b in segments
    ]


def load(cfg: SpellingConfig) -> TaskData:
    """Load the spelling task (see the module docstring for alphabet, segmenting and noise)."""
    if cfg.segment_len < 1:
        raise ConfigError(f"segment_len must be >= 1, got {cfg.segment_len}")
    if not 0.0 <= cfg.noise <= 1.0:
        raise ConfigError(f"noise must be a probability in [0, 1], got {cfg.noise}")
    if cfg.train_size < 0:
        raise ConfigError(f"train_size must be >= 0, got {cfg.train_size}")
    directory = resolve_data_dir(cfg.data_dir, "spelling_gutenberg", EXPECTS)
    paths = {s: find_file(directory, [f"sentences.{s}.txt"], EXPECTS) for s in SPLITS}

    splits: dict[str, list[Example]] = {}
    n_segments: dict[str, int] = {}
    n_changed = n_chars = 0
    for split in SPLITS:
        clean, noisy, segments = _read_split(paths[split], split, cfg)
        n_segments[split] = len(segments)
        if split == "train":
            segments = seeded_subset(segments, cfg.train_size, cfg.split_seed)
            segments = apply_limit(segments, cfg.limit_train)
        with no_gc():
            splits[split] = _examples(clean, noisy, segments)
        n_changed += int((clean != noisy).sum())
        n_chars += int(clean.shape[0])

    vocab = alphabet_vocab()  # a fresh copy with the same ids as the module's lookup tables

    def parse_source(line: str) -> list[list[int]]:
        ids = map_text(line.strip())
        if not ids:
            raise DataError("empty spelling source line")
        return token_stream(ids)

    def format_output(ids: Sequence[int]) -> str:
        return "".join(UNKNOWN_SYMBOL if t == UNK else t for t in vocab.decode(ids))

    return TaskData(
        name="spelling",
        train=splits["train"],
        valid=splits["valid"],
        test=splits["test"],
        tgt_vocab=vocab,
        src_vocabs=[vocab],
        src_feature_dim=None,
        fixed_length=False,
        metric="edit",
        cost="edit",
        lower_is_better=True,
        parse_source=parse_source,
        format_output=format_output,
        info={
            "sizes": {s: len(splits[s]) for s in SPLITS},
            "segments_available": n_segments,
            "vocab_sizes": {"tgt": len(vocab), "src": [len(vocab)], "alphabet": len(ALPHABET)},
            "files": {s: str(p) for s, p in paths.items()},
            "segment_len": cfg.segment_len,
            "noise": cfg.noise,
            "changed_char_rate": n_changed / max(n_chars, 1),
        },
    )
