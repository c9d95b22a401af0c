"""The user's own sequence-to-sequence data in tab-separated files.

Files: ``train``, ``valid`` and ``test`` (all required; relative paths are taken relative to ``data_dir`` when
it is set), plain or gzip text, one example per line::

    source<TAB>target

Every line must contain exactly one tab with a non-empty source and target on either side; a line without a
tab, with more than one, with an empty side (after tokenisation), or a blank line raises
:class:`~searnn.errors.DataError` naming ``file:line`` (no line is silently skipped). A trailing ``\\r``
(Windows line end) is removed, and so is a UTF-8 byte-order mark at the start of a file.

Lengths: a line whose source has more than ``max_src_len`` tokens or whose target has more than ``max_tgt_len``
(default 1000 each, 0 = no limit; a very long line would otherwise be padded into every batch it lands in) raises
a :class:`~searnn.errors.DataError` naming ``file:line`` (``too_long: error``, the default) or is left out, with
the count printed on stderr (``too_long: skip``). The limits apply to every split.

Tokenisation (``tokenize``): ``char`` -- every character is a token (spaces included); ``space`` -- tokens are
separated by whitespace. Vocabularies (one per side) hold the tokens seen at least ``min_count`` times in
``train``; others map to UNK. Sources have one stream (K = 1).

``metric``: ``cer`` (token error rate, cost ``hamming``), ``edit`` (edit distance / reference length, cost
``edit``) or ``bleu`` (corpus BLEU, cost ``bleu``, higher is better). With ``fixed_length`` every target must have
as many tokens as its source (checked, error otherwise) and the decoder emits exactly one token per source
position. Valid and test examples keep the target tokens as strings in ``Example.meta['ref_tokens']`` (scoring
against them avoids counting UNK as a match) and their ``line`` number.

``parse_source(line)``: one source (without tab), tokenised as configured. ``format_output(ids)``: tokens joined
by nothing (``char``) or by single spaces (``space``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from searnn.data.io import pair_examples, read_lines, token_stream
from searnn.data.task import TaskConfig, TaskData
from searnn.errors import ConfigError, DataError

TOKENIZERS = ("char", "space")
TOO_LONG = ("error", "skip")
METRIC_COSTS = {"cer": "hamming", "edit": "edit", "bleu": "bleu"}
SPLITS = ("train", "valid", "test")


@dataclass
class TsvConfig(TaskConfig):
    """Options of the tab-separated user-data task."""

    unused_options = ("split_seed",)  # no seeded split: the files are the splits

    train: str = field(default="", metadata={"help": "training file: 'source<TAB>target' lines (required)"})
    valid: str = field(default="", metadata={"help": "validation file, same format (required)"})
    test: str = field(default="", metadata={"help": "test file, same format (required)"})
    tokenize: str = field(default="char", metadata={"help": "char (every character) or space (whitespace words)"})
    metric: str = field(
        default="edit", metadata={"help": "cer, edit or bleu; the training cost follows (hamming, edit, bleu)"}
    )
    min_count: int = field(
        default=1, metadata={"help": "keep tokens seen at least this often in train; rarer ones become UNK"}
    )
    fixed_length: bool = field(
        default=False, metadata={"help": "one output token per source token (target length must equal source)"}
    )
    max_src_len: int = field(
        default=1000, metadata={"help": "longest source accepted, in tokens (0 = no limit); see --too-long"}
    )
    max_tgt_len: int = field(
        default=1000, metadata={"help": "longest target accepted, in tokens (0 = no limit); see --too-long"}
    )
    too_long: str = field(
        default="error",
        metadata={"help": "a line over --max-src-len/--max-tgt-len: error (naming file:line) or skip (counted)"},
    )


def _tokenizer(kind: str) -> Callable[[str], list[str]]:
    """``char``: the characters of the text; ``space``: its whitespace-separated words."""
    if kind == "char":
        return list
    return str.split


@dataclass(frozen=True)
class LengthLimit:
    """Longest source / target in tokens (0 = no limit) and what to do with a longer line."""

    max_src: int = 0
    max_tgt: int = 0
    action: str = "error"

    def excess(self, src: Sequence[str], tgt: Sequence[str]) -> str:
        """``''`` when the pair fits, else what is too long (for the message)."""
        if self.max_src and len(src) > self.max_src:
            return f"the source has {len(src)} tokens, more than --max-src-len {self.max_src}"
        if self.max_tgt and len(tgt) > self.max_tgt:
            return f"the target has {len(tgt)} tokens, more than --max-tgt-len {self.max_tgt}"
        return ""


def read_tsv(
    path: Path, tokenize: str, fixed_length: bool, limit: LengthLimit | None = None
) -> list[tuple[int, list[str], list[str]]]:
    """``(lineno, source tokens, target tokens)`` for every line of ``path``; malformed lines raise.

    Lines over ``limit`` raise (``action='error'``) or are left out, with their count printed on stderr
    (``action='skip'``)."""
    limit = limit or LengthLimit()
    split = _tokenizer(tokenize)
    out = []
    skipped = 0
    for lineno, line in read_lines(path):
        n_tabs = line.count("\t")
        if n_tabs != 1:
            what = "blank line" if not line.strip() else ("no tab" if n_tabs == 0 else f"{n_tabs} tabs")
            raise DataError(f"{path}:{lineno}: expected 'source<TAB>target' (exactly one tab), got {what}")
        src_text, tgt_text = line.split("\t")
        src, tgt = split(src_text), split(tgt_text)
        if not src:
            raise DataError(f"{path}:{lineno}: empty source (text before the tab)")
        if not tgt:
            raise DataError(f"{path}:{lineno}: empty target (text after the tab)")
        too_long = limit.excess(src, tgt)
        if too_long:
            if limit.action == "skip":
                skipped += 1
                continue
            raise DataError(f"{path}:{lineno}: {too_long} (raise the limit, or pass --too-long skip)")
        if fixed_length and len(src) != len(tgt):
            raise DataError(
                f"{path}:{lineno}: fixed_length is set but the source has {len(src)} tokens and the target "
                f"{len(tgt)}"
            )
        out.append((lineno, src, tgt))
    if skipped:
        print(f"searnn: {path}: skipped {skipped} line(s) over --max-src-len {limit.max_src} / "
              f"--max-tgt-len {limit.max_tgt} tokens", file=sys.stderr)
    if not out:
        what = "every line is too long" if skipped else "empty file"
        raise DataError(f"{path}: no examples ({what}); expected 'source<TAB>target' lines")
    return out


def _resolve(cfg: TsvConfig, split: str) -> Path:
    value = getattr(cfg, split)
    if not value:
        raise DataError(
            f"the tsv task needs a {split} file: pass --{split} FILE ('source<TAB>target' lines); "
            "train, valid and test are all required"
        )
    path = Path(value).expanduser()
    if not path.is_absolute() and cfg.data_dir:
        path = Path(cfg.data_dir).expanduser() / path
    if path.is_dir():
        raise DataError(f"{split} file {str(path)!r} is a directory; pass --{split} FILE ('source<TAB>target' lines)")
    if not path.is_file():
        raise DataError(f"{split} file {str(path)!r} not found; pass --{split} FILE ('source<TAB>target' lines)")
    return path


def load(cfg: TsvConfig) -> TaskData:
    """Load tab-separated data (see the module docstring for the format and options)."""
    if cfg.tokenize not in TOKENIZERS:
        raise ConfigError(f"unknown --tokenize {cfg.tokenize!r}; valid: {', '.join(TOKENIZERS)}")
    if cfg.metric not in METRIC_COSTS:
        raise ConfigError(f"unknown tsv --metric {cfg.metric!r}; valid: {', '.join(METRIC_COSTS)}")
    if cfg.min_count < 1:
        raise ConfigError(f"--min-count must be >= 1, got {cfg.min_count}")
    if cfg.too_long not in TOO_LONG:
        raise ConfigError(f"unknown --too-long {cfg.too_long!r}; valid: {', '.join(TOO_LONG)}")
    paths = {split: _resolve(cfg, split) for split in SPLITS}
    limit = LengthLimit(cfg.max_src_len, cfg.max_tgt_len, cfg.too_long)
    rows = {split: read_tsv(paths[split], cfg.tokenize, cfg.fixed_length, limit) for split in SPLITS}

    src_vocab, tgt_vocab, train, held = pair_examples(rows, cfg.min_count, cfg.limit_train)
    split_fn = _tokenizer(cfg.tokenize)
    joiner = "" if cfg.tokenize == "char" else " "

    def parse_source(line: str) -> list[list[int]]:
        tokens = split_fn(line.rstrip("\r\n"))
        if not tokens:
            raise DataError("empty source line")
        return token_stream(src_vocab.encode(tokens))

    def format_output(ids: Sequence[int]) -> str:
        return joiner.join(tgt_vocab.decode(ids))

    return TaskData(
        name="tsv",
        train=train,
        valid=held["valid"],
        test=held["test"],
        tgt_vocab=tgt_vocab,
        src_vocabs=[src_vocab],
        src_feature_dim=None,
        fixed_length=cfg.fixed_length,
        metric=cfg.metric,
        cost=METRIC_COSTS[cfg.metric],
        lower_is_better=cfg.metric != "bleu",
        parse_source=parse_source,
        format_output=format_output,
        info={
            "sizes": {"train": len(train), "valid": len(held["valid"]), "test": len(held["test"])},
            "vocab_sizes": {"tgt": len(tgt_vocab), "src": [len(src_vocab)]},
            "files": {split: str(p) for split, p in paths.items()},
            "tokenize": cfg.tokenize,
            "min_count": cfg.min_count,
        },
    )
