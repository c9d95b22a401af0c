"""Image captioning from precomputed image features (bring your own; nothing is shipped).

Files, in ``data_dir`` (required), for each split ``S`` in ``train``, ``valid``, ``test``:

* ``S_features.npy`` -- a float array with one entry per image: ``(N, F)`` global features (e.g. a CNN's
  pooled output) or ``(N, R, F)`` region sets (e.g. R detector regions per image). ``F`` must be the same in
  the three splits. Files are memory-mapped (``mmap``), so they may be larger than memory. Features are used
  as given: normalise them beforehand if your extractor needs it.
* the captions, in **one** of these forms:

  - ``S_captions.tsv`` -- one caption per line, ``image<TAB>caption``. Blank lines are ignored; any other
    line must hold exactly one tab (error naming ``file:line`` otherwise).
  - ``S_captions.json`` -- either a list whose item *i* is the list of captions of image *i*, or a mapping
    ``{image: [caption, ...]}``.

  ``image`` is the 0-based row of the image in ``S_features.npy``, unless the optional
  ``S_images.txt`` exists: it then lists one image id per line (line *i* = row *i*, e.g. COCO ids or file
  names) and ``image`` is such an id. An image may have any number of captions, in any order of lines.
* ``S_images.txt`` -- optional, see above. The id (or row) is kept in ``Example.meta['image_id']``.

Tokenisation: lowercase (``lowercase``), remove the ASCII punctuation characters (``strip_punctuation``:
``"A man's hat."`` -> ``a mans hat``), split on whitespace. A caption left empty is skipped (counted in
``info['skipped_empty']``). Vocabulary: the words of the training captions seen at least ``min_count``
times, most frequent first; the others map to UNK.

Sources: an image is a sequence of feature vectors -- its R regions, or a single position for global
features -- so ``Example.src`` is a float array ``(R, F)`` or ``(1, F)`` and the model's feature encoder
(a Linear projection then the encoder RNN, with attention if configured) reads it unchanged.

Examples:

* **train**: one per (image, caption) pair, in image then file order; ``tgt`` = the caption truncated to
  ``max_len`` words (0 = no truncation, counted in ``info['truncated']``); ``refs`` = the image's *other*
  captions (truncated alike), for the multi-reference objectives (V_refs pools, CIDEr-D rewards);
  ``limit_train`` keeps the first N pairs.
* **valid / test**: one per image that has at least one caption (images without are skipped, counted in
  ``info['images_without_captions']``); ``tgt`` = its first caption, ``refs`` = its other captions, so that
  ``[tgt] + refs`` (what :func:`searnn.evaluate.references` scores against) is every reference once, never
  truncated; ``meta['ref_tokens']`` = all references as word lists (out-of-vocabulary words kept),
  ``meta['image']`` = the row, ``meta['image_id']`` = the id.

Metric (``metric``): ``bleu`` (corpus BLEU-4 over all references, sacreBLEU; a reference UNK never matches)
or ``cider`` (corpus CIDEr-D x 100, :mod:`searnn.metrics.cider`); higher is better. Cost ``bleu``;
variable-length output.

``parse_source(line)``: the path of a ``.npy`` file holding one image's features (``(F,)`` or ``(R, F)``), or
whitespace-separated numbers (a multiple of ``F``: one or more feature vectors). ``format_output(ids)``: the
words joined by single spaces.
"""

from __future__ import annotations

import json
import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from searnn.data.batch import Example
from searnn.data.io import apply_limit, no_gc, read_lines
from searnn.data.task import TaskConfig, TaskData
from searnn.data.vocab import Vocab
from searnn.errors import ConfigError, DataError

SPLITS = ("train", "valid", "test")
METRICS = ("bleu", "cider")
EXPECTS = (
    "{train,valid,test}_features.npy ((N, F) or (N, R, F) float arrays) and {train,valid,test}_captions.tsv "
    "('image<TAB>caption' lines) or _captions.json; see `searnn tasks` / the captions section of README.md"
)
_PUNCT = str.maketrans("", "", string.punctuation)


@dataclass
class CaptionsConfig(TaskConfig):
    """Options of the image captioning task."""

    unused_options = ("split_seed",)  # no seeded split: the files are the splits

    min_count: int = field(
        default=5, metadata={"help": "keep words seen at least this often in the training captions; rarer -> UNK"}
    )
    max_len: int = field(
        default=16, metadata={"help": "truncate training captions to this many words (0 = keep); never valid/test"}
    )
    lowercase: bool = field(default=True, metadata={"help": "lowercase the captions"})
    strip_punctuation: bool = field(default=True, metadata={"help": "remove ASCII punctuation from the captions"})
    metric: str = field(default="bleu", metadata={"help": "validation/test metric: bleu | cider (CIDEr-D)"})
    mmap: bool = field(default=True, metadata={"help": "memory-map the feature files instead of loading them"})


def tokenize(text: str, cfg: CaptionsConfig) -> list[str]:
    """Caption text -> words (lowercased and without punctuation as configured)."""
    if cfg.lowercase:
        text = text.lower()
    if cfg.strip_punctuation:
        text = text.translate(_PUNCT)
    return text.split()


def load_features(path: Path, mmap: bool) -> np.ndarray:
    """A split's feature array ``(N, F)`` or ``(N, R, F)`` (memory-mapped copy-on-write when ``mmap``)."""
    if not path.is_file():
        raise DataError(f"{path}: file not found; the captions data_dir must hold {EXPECTS}")
    try:
        arr = np.load(path, mmap_mode="c" if mmap else None, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise DataError(f"{path}: not a readable .npy array ({e})") from None
    if not isinstance(arr, np.ndarray):
        raise DataError(f"{path}: expected a single .npy array")
    if arr.ndim not in (2, 3):
        raise DataError(f"{path}: expected shape (N, F) or (N, R, F), got {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise DataError(f"{path}: expected numbers, got dtype {arr.dtype}")
    if 0 in arr.shape[1:]:
        raise DataError(f"{path}: empty feature dimension in shape {arr.shape}")
    return arr


def image_source(features: np.ndarray, row: int) -> np.ndarray:
    """The source of image ``row``: ``(R, F)`` for region sets, ``(1, F)`` for global features (views)."""
    return features[row] if features.ndim == 3 else features[row : row + 1]


def _read_ids(path: Path) -> list[str]:
    ids = [line.strip() for _, line in read_lines(path)]
    while ids and not ids[-1]:
        ids.pop()
    seen: dict[str, int] = {}
    for i, image_id in enumerate(ids):
        if not image_id:
            raise DataError(f"{path}:{i + 1}: empty image id")
        if image_id in seen:
            raise DataError(f"{path}:{i + 1}: image id {image_id!r} repeats line {seen[image_id] + 1}")
        seen[image_id] = i
    return ids


def _raw_captions(split: str, directory: Path) -> tuple[list[tuple[str, str, str]], Path]:
    """``(image key, caption text, where)`` records of a split's captions file, and the file."""
    tsv, js = directory / f"{split}_captions.tsv", directory / f"{split}_captions.json"
    if tsv.is_file() and js.is_file():
        raise DataError(f"{directory}: both {tsv.name} and {js.name} exist; keep one")
    if tsv.is_file():
        records = []
        for lineno, line in read_lines(tsv):
            if not line.strip():
                continue
            if line.count("\t") != 1:
                raise DataError(f"{tsv}:{lineno}: expected 'image<TAB>caption' (exactly one tab)")
            key, text = line.split("\t")
            records.append((key.strip(), text, f"{tsv}:{lineno}"))
        return records, tsv
    if js.is_file():
        try:
            data = json.loads(js.read_text(encoding="utf-8-sig"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise DataError(f"{js}: invalid JSON ({e})") from None
        items: list[tuple[Any, Any]]
        if isinstance(data, list):
            items = list(enumerate(data))
        elif isinstance(data, dict):
            items = list(data.items())
        else:
            raise DataError(f"{js}: expected a list (captions per image) or a mapping image -> captions")
        records = []
        for key, caps in items:
            if isinstance(caps, str):
                caps = [caps]
            if not isinstance(caps, list) or not all(isinstance(c, str) for c in caps):
                raise DataError(f"{js}: image {key!r}: expected a list of caption strings")
            records.extend((str(key), c, f"{js}: image {key!r}") for c in caps)
        return records, js
    raise DataError(f"{directory}: no {split}_captions.tsv or {split}_captions.json; the directory must hold {EXPECTS}")


def read_split(
    split: str, directory: Path, cfg: CaptionsConfig
) -> tuple[np.ndarray, list[str], list[list[list[str]]], dict[str, Any]]:
    """Features, image ids and the tokenised captions of every image (file order) of one split."""
    features = load_features(directory / f"{split}_features.npy", cfg.mmap)
    n = features.shape[0]
    ids_path = directory / f"{split}_images.txt"
    ids = _read_ids(ids_path) if ids_path.is_file() else None
    if ids is not None and len(ids) != n:
        raise DataError(f"{ids_path}: {len(ids)} image ids but {split}_features.npy has {n} rows")
    index = {image_id: i for i, image_id in enumerate(ids)} if ids is not None else None
    records, cap_path = _raw_captions(split, directory)
    captions: list[list[list[str]]] = [[] for _ in range(n)]
    skipped = 0
    for key, text, where in records:
        if index is not None:
            if key not in index:
                raise DataError(f"{where}: image id {key!r} is not listed in {ids_path.name}")
            row = index[key]
        else:
            try:
                row = int(key)
            except ValueError:
                raise DataError(
                    f"{where}: image {key!r} is not a row number (add {split}_images.txt to use image ids)"
                ) from None
            if not 0 <= row < n:
                raise DataError(f"{where}: image row {row} out of range: {split}_features.npy has {n} rows")
        tokens = tokenize(text, cfg)
        if tokens:
            captions[row].append(tokens)
        else:
            skipped += 1
    info = {"features": str(directory / f"{split}_features.npy"), "captions": str(cap_path),
            "skipped_empty": skipped}
    return features, ids if ids is not None else [str(i) for i in range(n)], captions, info


def _check_config(cfg: CaptionsConfig) -> None:
    if cfg.metric not in METRICS:
        raise ConfigError(f"unknown captions metric {cfg.metric!r}; valid: {', '.join(METRICS)}")
    if cfg.min_count < 1:
        raise ConfigError(f"min_count must be >= 1, got {cfg.min_count}")
    if cfg.max_len < 0:
        raise ConfigError(f"max_len must be >= 0, got {cfg.max_len}")
    if not cfg.data_dir:
        raise DataError(f"the captions task ships no data; pass --data-dir DIR containing {EXPECTS}")


def load(cfg: CaptionsConfig) -> TaskData:
    """Load the captioning task (see the module docstring for the files and examples)."""
    _check_config(cfg)
    directory = Path(cfg.data_dir).expanduser()
    if directory.exists() and not directory.is_dir():
        raise DataError(f"--data-dir {str(directory)!r} is a file; pass a directory holding {EXPECTS}")
    if not directory.is_dir():
        raise DataError(f"captions data directory {str(directory)!r} not found; it must hold {EXPECTS}")
    splits = {split: read_split(split, directory, cfg) for split in SPLITS}
    dims = {split: s[0].shape[-1] for split, s in splits.items()}
    if len(set(dims.values())) != 1:
        raise DataError(f"{directory}: the feature size F differs between splits: {dims}")
    feature_dim = int(dims["train"])

    train_feats, _, train_caps, _ = splits["train"]
    vocab = Vocab.build((c for caps in train_caps for c in caps), min_count=cfg.min_count)

    def cut(tokens: list[str]) -> list[str]:
        return tokens[: cfg.max_len] if cfg.max_len else tokens

    truncated = sum(len(c) > cfg.max_len for caps in train_caps for c in caps) if cfg.max_len else 0
    with no_gc():
        pairs = []
        for row, caps in enumerate(train_caps):
            encoded = [vocab.encode(cut(c)) for c in caps]
            for k, ids in enumerate(encoded):
                pairs.append((row, k, ids, encoded))
        train = [
            Example(src=image_source(train_feats, row), tgt=ids,
                    refs=[other for j, other in enumerate(encoded) if j != k], meta={"image": row})
            for row, k, ids, encoded in apply_limit(pairs, cfg.limit_train)
        ]
        held: dict[str, list[Example]] = {}
        without: dict[str, int] = {}
        for split in ("valid", "test"):
            feats, ids, caps_per_image, _ = splits[split]
            held[split] = []
            for row, caps in enumerate(caps_per_image):
                if not caps:
                    continue
                encoded = [vocab.encode(c) for c in caps]
                held[split].append(Example(
                    src=image_source(feats, row), tgt=encoded[0], refs=encoded[1:],
                    meta={"ref_tokens": caps, "image": row, "image_id": ids[row]},
                ))
            without[split] = len(caps_per_image) - len(held[split])
    if not train:
        raise DataError(f"{splits['train'][3]['captions']}: no training caption (all empty?)")
    for split in ("valid", "test"):
        if not held[split]:
            raise DataError(f"{splits[split][3]['captions']}: no {split} image has a caption")

    def parse_source(line: str) -> np.ndarray:
        text = line.strip()
        if not text:
            raise DataError("empty input line: expected a .npy path or feature numbers")
        if text.endswith(".npy"):
            try:
                arr = np.load(Path(text).expanduser(), allow_pickle=False)
            except (ValueError, OSError) as e:
                raise DataError(f"{text}: cannot read features ({e})") from None
        else:
            try:
                arr = np.array([float(v) for v in text.split()], dtype=np.float32)
            except ValueError:
                raise DataError("expected a .npy path or whitespace-separated numbers") from None
            if arr.size % feature_dim:
                raise DataError(f"got {arr.size} numbers, not a multiple of the feature size {feature_dim}")
        arr = np.asarray(arr, dtype=np.float32)
        arr = arr.reshape(-1, feature_dim) if arr.ndim == 1 else arr
        if arr.ndim != 2 or arr.shape[1] != feature_dim:
            raise DataError(f"expected features of shape (F,) or (R, F) with F = {feature_dim}, got {arr.shape}")
        return arr

    def format_output(ids: Sequence[int]) -> str:
        return " ".join(vocab.decode(ids))

    return TaskData(
        name="captions",
        train=train,
        valid=held["valid"],
        test=held["test"],
        tgt_vocab=vocab,
        src_vocabs=[],
        src_feature_dim=feature_dim,
        fixed_length=False,
        metric=cfg.metric,
        cost="bleu",
        lower_is_better=False,
        parse_source=parse_source,
        format_output=format_output,
        info={
            "sizes": {"train": len(train), "valid": len(held["valid"]), "test": len(held["test"])},
            "images": {split: int(s[0].shape[0]) for split, s in splits.items()},
            "feature_shape": list(train_feats.shape[1:]),
            "images_without_captions": without,
            "skipped_empty": {split: s[3]["skipped_empty"] for split, s in splits.items()},
            "truncated": truncated,
            "vocab_size": len(vocab),
            "min_count": cfg.min_count,
            "files": {split: {"features": s[3]["features"], "captions": s[3]["captions"]}
                      for split, s in splits.items()},
        },
    )
