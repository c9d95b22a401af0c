"""Machine translation (docs/METHODS.md §6.4): Multi30k (shipped) or IWSLT'14 De-En (user-provided).

Datasets (``dataset``):

* ``multi30k`` -- the shipped copy ``data/multi30k/tok`` (lowercased, Moses-tokenised task-1 files):
  ``train.lc.norm.tok.{de,en}.gz`` (29,000 pairs), ``val.lc.norm.tok.*`` (1,014) and
  ``test_2016_flickr.lc.norm.tok.*`` (1,000). ``data_dir`` may point to another directory holding these
  names (or ``train.L`` / ``valid.L`` / ``test.L``), directly or in a ``tok/`` subfolder.
* ``iwslt14`` -- not shipped (needs ``data_dir``): a directory with the fairseq ``prepare-iwslt14.sh`` output
  ``{train,valid,test}.{de,en}`` (each optionally ``.gz``). When ``train.*`` is absent, ``train_sample.*``
  is used instead (the partial training sample of the offline data copy); ``info['files']['train']`` names
  the files used and ``info['train_sample_used']`` is True in that case.

Every file holds one tokenised sentence per line, line *i* of the source file translating line *i* of the target
file; tokens are separated by whitespace. Text is lowercased when ``lowercase`` is set (a no-op for the files
above, already lowercased).

**Empty sides.** A pair whose source or target line is empty (after stripping) cannot be trained on nor
scored; it is **skipped** in every split and counted in ``info['skipped_empty']`` (0 for both datasets above).

**Length filter.** Training pairs with more than ``max_len`` tokens on either side are dropped (0 = keep all);
counted in ``info['filtered_long']``. Validation and test pairs are **never** filtered (unlike the reference
code, which also filtered its test set).

**Vocabularies.** One word vocabulary per side, built from the (filtered) training pairs before
``limit_train``: words seen at least ``min_count`` times, most frequent first; the others map to UNK.

**References.** Valid and test examples keep the reference tokens as strings in
``Example.meta['ref_tokens']`` (and the 1-based ``line`` of the pair), so that BLEU can be computed against the
real references, OOV words included: scoring the UNK ids of ``tgt`` instead would let a predicted UNK match a
reference UNK. Metric ``bleu`` (corpus BLEU, higher is better), cost ``bleu``; variable-length output.

``parse_source(line)``: whitespace-tokenised (and lowercased when ``lowercase``) source sentence.
``format_output(ids)``: the target tokens joined by single spaces (UNK prints as ``<unk>``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from searnn.data.io import find_file, pair_examples, read_lines, resolve_data_dir, token_stream
from searnn.data.task import TaskConfig, TaskData
from searnn.errors import ConfigError, DataError

DATASETS = ("multi30k", "iwslt14")
SPLITS = ("train", "valid", "test")

# candidate file stems per dataset and split; the language code is appended as ".{lang}"
_STEMS: dict[str, dict[str, list[str]]] = {
    "multi30k": {
        "train": ["train.lc.norm.tok", "train"],
        "valid": ["val.lc.norm.tok", "valid", "val"],
        "test": ["test_2016_flickr.lc.norm.tok", "test"],
    },
    "iwslt14": {"train": ["train", "train_sample"], "valid": ["valid"], "test": ["test"]},
}


@dataclass
class TranslationConfig(TaskConfig):
    """Options of the translation task."""

    unused_options = ("split_seed",)  # no seeded split: the files are the splits

    dataset: str = field(
        default="multi30k", metadata={"help": "multi30k (shipped) or iwslt14 (needs data_dir)"}
    )
    src_lang: str = field(default="de", metadata={"help": "source language code (file suffix)"})
    tgt_lang: str = field(default="en", metadata={"help": "target language code (file suffix)"})
    min_count: int = field(
        default=2, metadata={"help": "keep words seen at least this often in train; rarer words become UNK"}
    )
    max_len: int = field(
        default=50,
        metadata={"help": "drop training pairs longer than this (tokens, either side; 0 = keep all); "
                  "valid/test are never filtered"},
    )
    lowercase: bool = field(default=True, metadata={"help": "lowercase all text"})


def _expects(cfg: TranslationConfig) -> str:
    s, t = cfg.src_lang, cfg.tgt_lang
    if cfg.dataset == "iwslt14":
        return (
            f"train.{s}/train.{t} (or train_sample.*), valid.{s}/valid.{t} and test.{s}/test.{t} "
            "(optionally .gz; fairseq prepare-iwslt14.sh output)"
        )
    return (
        f"train.lc.norm.tok.{s}/.{t}, val.lc.norm.tok.{s}/.{t} and test_2016_flickr.lc.norm.tok.{s}/.{t} "
        "(optionally .gz; Multi30k task 1 tokenised files)"
    )


def _find_pair(directory: Path, split: str, cfg: TranslationConfig) -> tuple[Path, Path]:
    """The (source, target) files of one split; both use the first stem whose source file exists."""
    stems = _STEMS[cfg.dataset][split]
    dirs = [directory] + ([directory / "tok"] if (directory / "tok").is_dir() else [])
    for d in dirs:
        for stem in stems:
            for suffix in ("", ".gz"):
                src = d / f"{stem}.{cfg.src_lang}{suffix}"
                if src.is_file():
                    tgt = find_file(d, [f"{stem}.{cfg.tgt_lang}"], _expects(cfg))
                    return src, tgt
    names = ", ".join(f"{stem}.{cfg.src_lang}[.gz]" for stem in stems)
    raise DataError(f"{directory}: no {split} source file ({names}); pass --data-dir DIR containing {_expects(cfg)}")


def read_pairs(src_path: Path, tgt_path: Path, lowercase: bool) -> list[tuple[int, str, str]]:
    """Parallel lines ``(lineno, source, target)`` (stripped); the two files must have as many lines."""
    src_lines = [line for _, line in read_lines(src_path)]
    tgt_lines = [line for _, line in read_lines(tgt_path)]
    if len(src_lines) != len(tgt_lines):
        raise DataError(
            f"{src_path} has {len(src_lines)} lines but {tgt_path} has {len(tgt_lines)}; "
            "parallel files must have one sentence per line, aligned"
        )
    pairs = enumerate(zip(src_lines, tgt_lines, strict=True), start=1)
    if lowercase:
        return [(i, s.strip().lower(), t.strip().lower()) for i, (s, t) in pairs]
    return [(i, s.strip(), t.strip()) for i, (s, t) in pairs]


def load(cfg: TranslationConfig) -> TaskData:
    """Load the translation task (see the module docstring for datasets, filtering and vocabularies)."""
    if cfg.dataset not in DATASETS:
        raise ConfigError(f"unknown translation dataset {cfg.dataset!r}; valid: {', '.join(DATASETS)}")
    if cfg.src_lang == cfg.tgt_lang:
        raise ConfigError(f"src_lang and tgt_lang must differ, both are {cfg.src_lang!r}")
    if cfg.min_count < 1:
        raise ConfigError(f"min_count must be >= 1, got {cfg.min_count}")
    if cfg.max_len < 0:
        raise ConfigError(f"max_len must be >= 0, got {cfg.max_len}")
    if cfg.dataset == "iwslt14" and not cfg.data_dir:
        raise DataError(
            f"the iwslt14 dataset is not shipped with searnn; pass --data-dir DIR containing {_expects(cfg)}"
        )
    directory = resolve_data_dir(cfg.data_dir, "multi30k", _expects(cfg))
    files = {split: _find_pair(directory, split, cfg) for split in SPLITS}

    tokenized: dict[str, list[tuple[int, list[str], list[str]]]] = {}
    skipped_empty: dict[str, int] = {}
    raw_sizes: dict[str, int] = {}
    filtered_long = 0
    for split in SPLITS:
        pairs = read_pairs(*files[split], lowercase=cfg.lowercase)
        raw_sizes[split] = len(pairs)
        kept = [(i, s.split(), t.split()) for i, s, t in pairs if s and t]
        skipped_empty[split] = len(pairs) - len(kept)
        if split == "train" and cfg.max_len:
            before = len(kept)
            kept = [p for p in kept if len(p[1]) <= cfg.max_len and len(p[2]) <= cfg.max_len]
            filtered_long = before - len(kept)
        tokenized[split] = kept
    if not tokenized["train"]:
        raise DataError(f"{files['train'][0]}: no training pairs left (empty files or all longer than max_len)")

    src_vocab, tgt_vocab, train, held = pair_examples(tokenized, cfg.min_count, cfg.limit_train)

    def parse_source(line: str) -> list[list[int]]:
        tokens = (line.lower() if cfg.lowercase else line).split()
        if not tokens:
            raise DataError("empty translation source line")
        return token_stream(src_vocab.encode(tokens))

    def format_output(ids: Sequence[int]) -> str:
        return " ".join(tgt_vocab.decode(ids))

    return TaskData(
        name="translation",
        train=train,
        valid=held["valid"],
        test=held["test"],
        tgt_vocab=tgt_vocab,
        src_vocabs=[src_vocab],
        src_feature_dim=None,
        fixed_length=False,
        metric="bleu",
        cost="bleu",
        lower_is_better=False,
        parse_source=parse_source,
        format_output=format_output,
        info={
            "dataset": cfg.dataset,
            "languages": f"{cfg.src_lang}-{cfg.tgt_lang}",
            "sizes": {"train": len(train), "valid": len(held["valid"]), "test": len(held["test"])},
            "raw_sizes": raw_sizes,
            "skipped_empty": skipped_empty,
            "filtered_long": filtered_long,
            "max_len": cfg.max_len,
            "vocab_sizes": {"tgt": len(tgt_vocab), "src": [len(src_vocab)]},
            "min_count": cfg.min_count,
            "files": {split: [str(p) for p in pair] for split, pair in files.items()},
            "train_sample_used": files["train"][0].name.startswith("train_sample."),
        },
    )
