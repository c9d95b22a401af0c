"""Text chunking (CoNLL-2000), docs/METHODS.md §6.3.

Data: ``train.txt[.gz]`` and ``test.txt[.gz]``, one token per line ``word POS chunk-tag`` (exactly three
whitespace-separated fields), sentences separated by blank lines. The shipped copy (``data/conll2000``) has
8,936 training and 2,012 test sentences.

Splits: **test** = ``test.txt``; **valid** = a seeded (``split_seed``) ``valid_fraction`` of the training
sentences (default 10%: 894 sentences); **train** = the other training sentences, in file order
(``limit_train`` keeps the first N).

Source: two parallel streams per position, ``src = [[word_id, pos_id], ...]``.

* words are lowercased (``lowercase``) and every digit is replaced by ``0`` (``normalize_digits``), then
  mapped through a vocabulary of the normalised words seen at least ``min_count`` times in the **train**
  split (after the validation hold-out, before ``limit_train``); others become UNK;
* POS tags use a vocabulary of the tags seen in the train split (unseen tags become UNK).

Target: chunk tags (IOB2). Tags are normalised on load as conlleval reads them: an ``I-X`` that does not
continue a chunk of X (first tag, after ``O`` or after a tag of another type) opens a chunk, and becomes
``B-X`` (:func:`normalize_iob`; the chunks, hence the metric, are unchanged). The tag vocabulary is fixed
so that ids are stable across runs and data subsets: the specials, then the 23 CoNLL-2000 tags in sorted
order (:data:`CONLL2000_TAGS`), then any other tag found in the files (sorted; none for the real corpus;
with the ``B-X`` of every ``I-X``). Fixed-length output, metric ``f1`` (chunk F1,
higher is better), cost ``f1``. ``Example.meta`` keeps the original ``words`` and ``pos`` strings.

``parse_source(line)``: whitespace-separated ``word/POS`` tokens, split at the **last** ``/`` (so words may
contain ``/``, e.g. ``1/2/CD``); a token without ``/`` or with an empty word or POS is an error.
``format_output(ids)``: the chunk tags joined by single spaces.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from searnn.data.batch import Example
from searnn.data.io import apply_limit, find_file, holdout_split, no_gc, read_lines, resolve_data_dir
from searnn.data.task import TaskConfig, TaskData
from searnn.data.vocab import Vocab
from searnn.errors import ConfigError, DataError

CHUNK_TYPES = ("NP", "VP", "PP", "ADVP", "SBAR", "ADJP", "PRT", "CONJP", "INTJ", "LST", "UCP")
"""The 11 chunk types of CoNLL-2000."""
CONLL2000_TAGS: tuple[str, ...] = tuple(
    sorted(
        [f"{p}-{c}" for p in "BI" for c in CHUNK_TYPES] + ["O"]
    )
)
"""The 23 chunk tags of CoNLL-2000 (11 chunk types x B/I, plus O), sorted."""

EXPECTS = "train.txt[.gz] and test.txt[.gz] (CoNLL-2000 format: 'word POS chunk-tag' per line)"
_DIGIT = re.compile(r"\d")


@dataclass
class ChunkingConfig(TaskConfig):
    """Options of the CoNLL-2000 chunking task."""

    valid_fraction: float = field(
        default=0.1, metadata={"help": "fraction of the training sentences held out (seeded) for validation"}
    )
    min_count: int = field(
        default=2, metadata={"help": "keep words seen at least this often in train; rarer words become UNK"}
    )
    lowercase: bool = field(default=True, metadata={"help": "lowercase the words"})
    normalize_digits: bool = field(default=True, metadata={"help": "replace every digit of a word by 0"})


@dataclass
class Sentence:
    """One CoNLL sentence: parallel ``words``, ``pos`` and ``tags``, and the line number it starts on."""

    words: list[str]
    pos: list[str]
    tags: list[str]
    lineno: int


def read_conll(path: Path) -> list[Sentence]:
    """Read a CoNLL-2000 file into sentences (blank lines separate sentences; runs of them are allowed)."""
    sentences: list[Sentence] = []
    cur: Sentence | None = None
    for lineno, line in read_lines(path):
        fields = line.split()
        if not fields:
            cur = None
            continue
        if len(fields) != 3:
            raise DataError(
                f"{path}:{lineno}: expected 3 fields 'word POS chunk-tag', got {len(fields)}: {line.strip()!r}"
            )
        if cur is None:
            cur = Sentence([], [], [], lineno)
            sentences.append(cur)
        cur.words.append(fields[0])
        cur.pos.append(fields[1])
        cur.tags.append(fields[2])
    if not sentences:
        raise DataError(f"{path}: no sentences found; expected {EXPECTS}")
    return sentences


def normalize_iob(tags: Sequence[str]) -> list[str]:
    """IOB tags -> IOB2: every ``I-X`` that opens a chunk (conlleval: the previous tag is not ``B-X``/``I-X``)
    becomes ``B-X``; other tags are kept. ``['O', 'I-NP', 'I-VP'] -> ['O', 'B-NP', 'B-VP']``."""
    out: list[str] = []
    prev_type = ""
    for tag in tags:
        kind, typ = (tag[0], tag[2:]) if tag[:2] in ("B-", "I-") else ("O", "")
        if kind == "I" and typ != prev_type:
            tag = "B-" + typ
        out.append(tag)
        prev_type = typ
    return out


def parse_tokens(line: str) -> tuple[list[str], list[str]]:
    """``'word/POS word/POS ...'`` -> ``(words, pos)``; raises :class:`DataError` on a malformed token."""
    words, pos = [], []
    for tok in line.split():
        word, sep, tag = tok.rpartition("/")
        if not sep or not word or not tag:
            raise DataError(f"chunking source token {tok!r} is not of the form word/POS")
        words.append(word)
        pos.append(tag)
    if not words:
        raise DataError("empty chunking source line; expected 'word/POS word/POS ...'")
    return words, pos


def load(cfg: ChunkingConfig) -> TaskData:
    """Load the chunking task (see the module docstring for splits, vocabularies and formats)."""
    if cfg.min_count < 1:
        raise ConfigError(f"min_count must be >= 1, got {cfg.min_count}")
    directory = resolve_data_dir(cfg.data_dir, "conll2000", EXPECTS)
    train_path = find_file(directory, ["train.txt"], EXPECTS)
    test_path = find_file(directory, ["test.txt"], EXPECTS)
    train_all = read_conll(train_path)
    test_sents = read_conll(test_path)

    def norm(word: str) -> str:
        if cfg.lowercase:
            word = word.lower()
        if cfg.normalize_digits:
            word = _DIGIT.sub("0", word)
        return word

    keep, held = holdout_split(len(train_all), cfg.valid_fraction, cfg.split_seed)
    train_sents = [train_all[i] for i in keep]
    valid_sents = [train_all[i] for i in held]

    word_vocab = Vocab.build(([norm(w) for w in s.words] for s in train_sents), min_count=cfg.min_count)
    pos_vocab = Vocab.build((s.pos for s in train_sents), min_count=1)
    for s in train_all + test_sents:
        s.tags = normalize_iob(s.tags)
    seen = {t for s in train_all + test_sents for t in s.tags}
    seen |= {"B-" + t[2:] for t in seen if t.startswith("I-")}  # the f1 oracle opens chunks with B-X
    tag_vocab = Vocab(list(CONLL2000_TAGS) + sorted(seen - set(CONLL2000_TAGS)))

    def encode_src(words: Sequence[str], pos: Sequence[str]) -> list[list[int]]:
        wids = word_vocab.encode([norm(w) for w in words])
        pids = pos_vocab.encode(pos)
        return [[w, p] for w, p in zip(wids, pids, strict=True)]

    def make(sents: list[Sentence]) -> list[Example]:
        return [
            Example(
                src=encode_src(s.words, s.pos),
                tgt=tag_vocab.encode(s.tags),
                meta={"words": s.words, "pos": s.pos},
            )
            for s in sents
        ]

    with no_gc():
        train_full = make(train_sents)
        valid = make(valid_sents)
        test = make(test_sents)
    train = apply_limit(train_full, cfg.limit_train)

    def parse_source(line: str) -> list[list[int]]:
        return encode_src(*parse_tokens(line))

    def format_output(ids: Sequence[int]) -> str:
        return " ".join(tag_vocab.decode(ids))

    n_tok = sum(len(s.words) for s in train_sents)
    n_unk = sum(1 for ex in train_full for w, _ in ex.src if w == word_vocab.unk_id)
    return TaskData(
        name="chunking",
        train=train,
        valid=valid,
        test=test,
        tgt_vocab=tag_vocab,
        src_vocabs=[word_vocab, pos_vocab],
        src_feature_dim=None,
        fixed_length=True,
        metric="f1",
        cost="f1",
        lower_is_better=False,
        parse_source=parse_source,
        format_output=format_output,
        info={
            "sizes": {"train": len(train), "valid": len(valid), "test": len(test)},
            "vocab_sizes": {"tgt": len(tag_vocab), "src": [len(word_vocab), len(pos_vocab)]},
            "files": {"train": str(train_path), "test": str(test_path)},
            "train_split_tokens": n_tok,
            "train_split_unk_words": n_unk,
            "valid_fraction": cfg.valid_fraction,
            "min_count": cfg.min_count,
        },
    )
