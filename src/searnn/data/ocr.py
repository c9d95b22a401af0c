"""OCR handwritten words (Taskar, Guestrin & Koller 2003), docs/METHODS.md §6.1.

Data: ``letter.data[.gz]``, one letter per line with 134 whitespace-separated fields
``id letter next_id word_id position fold p_0_0 ... p_15_7`` (128 binary pixels of a 16x8 image).
Letters are grouped by ``word_id`` and ordered by ``position``; the ``next_id`` chain and the positions
are checked for consistency. The shipped copy (``data/ocr``) holds 52,152 letters in 6,877 words.

Splits: **test** = the words of fold ``test_fold`` (fold 0: 626 words); **valid** = a seeded
(``split_seed``) ``valid_fraction`` of the other words; **train** = the rest. (The reference code used the
test fold for validation too; here the validation words are disjoint from test.) Words keep the file's
``word_id`` order inside each split; ``limit_train`` keeps the first N training words.

Example: ``src`` = float32 array ``(len, 128)`` of pixels, ``tgt`` = letter ids; ``meta`` holds
``word_id`` and ``fold``. Target vocabulary: the specials then the 26 letters ``a..z`` in alphabetical order
(fixed, independent of the data). Fixed-length output, metric ``cer`` (character error rate), cost ``hamming``.

``parse_source(line)``: a line of whitespace-separated ``0``/``1`` pixels, 128 per letter, letters
concatenated (so the count is a multiple of 128), each letter row-major 16 rows x 8 columns.
``format_output(ids)``: the letters joined without spaces.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from searnn.data.batch import Example
from searnn.data.io import apply_limit, find_file, holdout_split, no_gc, read_lines, resolve_data_dir
from searnn.data.task import TaskConfig, TaskData
from searnn.data.vocab import UNK, Vocab
from searnn.errors import DataError

PIXELS = 128
"""Pixels per letter (16 rows x 8 columns)."""
N_FIELDS = 6 + PIXELS
LETTERS = string.ascii_lowercase
EXPECTS = "letter.data[.gz] (Taskar et al. OCR letters, one letter per line)"


@dataclass
class OcrConfig(TaskConfig):
    """Options of the OCR task."""

    test_fold: int = field(default=0, metadata={"help": "fold (0-9) used as the test set"})
    valid_fraction: float = field(
        default=0.1, metadata={"help": "fraction of the non-test words held out (seeded) for validation"}
    )


def letter_vocab() -> Vocab:
    """The fixed target vocabulary: specials then ``a..z``."""
    return Vocab(LETTERS)


@dataclass
class _Letter:
    id: int
    letter: str
    next_id: int
    position: int
    fold: int
    pixels: np.ndarray
    lineno: int


def _parse_letter_line(path: Path, lineno: int, line: str) -> tuple[int, _Letter]:
    fields = line.split()
    if len(fields) != N_FIELDS:
        raise DataError(
            f"{path}:{lineno}: expected {N_FIELDS} fields (id, letter, next_id, word_id, position, fold, "
            f"{PIXELS} pixels), got {len(fields)}"
        )
    try:
        lid, next_id, word_id, position, fold = (int(fields[i]) for i in (0, 2, 3, 4, 5))
    except ValueError:
        raise DataError(f"{path}:{lineno}: id, next_id, word_id, position and fold must be integers") from None
    letter = fields[1]
    if letter not in LETTERS or len(letter) != 1:
        raise DataError(f"{path}:{lineno}: letter must be one of a..z, got {letter!r}")
    joined = "".join(fields[6:])
    pixels = np.frombuffer(joined.encode("ascii", "replace"), dtype=np.uint8) - ord("0")
    if len(joined) != PIXELS or pixels.max() > 1:
        raise DataError(f"{path}:{lineno}: pixels must be {PIXELS} values 0 or 1")
    return word_id, _Letter(lid, letter, next_id, position, fold, pixels.astype(np.float32), lineno)


def read_words(path: Path) -> list[tuple[int, int, str, np.ndarray]]:
    """Read ``letter.data``: a list of ``(word_id, fold, word, pixels (len, 128) float32)`` by word id."""
    words: dict[int, list[_Letter]] = {}
    for lineno, line in read_lines(path):
        if not line.strip():
            continue
        word_id, letter = _parse_letter_line(path, lineno, line)
        words.setdefault(word_id, []).append(letter)
    if not words:
        raise DataError(f"{path}: no letters found; expected {EXPECTS}")
    out = []
    for word_id in sorted(words):
        letters = sorted(words[word_id], key=lambda x: x.position)
        for k, let in enumerate(letters):
            if let.position != k + 1:
                raise DataError(
                    f"{path}:{let.lineno}: word {word_id}: position {let.position}, expected {k + 1}"
                )
            expected_next = letters[k + 1].id if k + 1 < len(letters) else -1
            if let.next_id != expected_next:
                raise DataError(
                    f"{path}:{let.lineno}: word {word_id}: next_id {let.next_id}, expected {expected_next}"
                )
            if let.fold != letters[0].fold:
                raise DataError(f"{path}:{let.lineno}: word {word_id}: letters of one word in different folds")
        out.append(
            (word_id, letters[0].fold, "".join(x.letter for x in letters), np.stack([x.pixels for x in letters]))
        )
    return out


def parse_source(line: str) -> np.ndarray:
    """``'0 1 1 0 ...'`` (128 pixels per letter, letters concatenated) -> float32 array ``(len, 128)``."""
    tokens = line.split()
    if not tokens:
        raise DataError("empty OCR source line; expected 128 whitespace-separated 0/1 pixels per letter")
    if len(tokens) % PIXELS:
        raise DataError(f"OCR source line has {len(tokens)} values, not a multiple of {PIXELS} (pixels per letter)")
    bad = next((t for t in tokens if t not in ("0", "1")), None)
    if bad is not None:
        raise DataError(f"OCR source pixels must be 0 or 1, got {bad!r}")
    return np.array([t == "1" for t in tokens], dtype=np.float32).reshape(-1, PIXELS)


def load(cfg: OcrConfig) -> TaskData:
    """Load the OCR task (see the module docstring for splits and formats)."""
    directory = resolve_data_dir(cfg.data_dir, "ocr", EXPECTS)
    path = find_file(directory, ["letter.data"], EXPECTS)
    with no_gc():
        words = read_words(path)
    vocab = letter_vocab()
    folds = sorted({fold for _, fold, _, _ in words})
    if cfg.test_fold not in folds:
        raise DataError(f"{path}: no word in test_fold {cfg.test_fold}; folds present: {folds}")

    examples = [
        Example(src=pixels, tgt=vocab.encode(list(word)), meta={"word_id": wid, "fold": fold})
        for wid, fold, word, pixels in words
    ]
    test = [ex for ex in examples if ex.meta["fold"] == cfg.test_fold]
    rest = [ex for ex in examples if ex.meta["fold"] != cfg.test_fold]
    keep, held = holdout_split(len(rest), cfg.valid_fraction, cfg.split_seed)
    train = apply_limit([rest[i] for i in keep], cfg.limit_train)
    valid = [rest[i] for i in held]

    def format_output(ids: Sequence[int]) -> str:
        return "".join("?" if t == UNK else t for t in vocab.decode(ids))

    return TaskData(
        name="ocr",
        train=train,
        valid=valid,
        test=test,
        tgt_vocab=vocab,
        src_vocabs=[],
        src_feature_dim=PIXELS,
        fixed_length=True,
        metric="cer",
        cost="hamming",
        lower_is_better=True,
        parse_source=parse_source,
        format_output=format_output,
        info={
            "sizes": {"train": len(train), "valid": len(valid), "test": len(test)},
            "vocab_sizes": {"tgt": len(vocab), "src": []},
            "files": {"letters": str(path)},
            "words": len(words),
            "letters": sum(len(w) for _, _, w, _ in words),
            "test_fold": cfg.test_fold,
            "valid_fraction": cfg.valid_fraction,
        },
    )
