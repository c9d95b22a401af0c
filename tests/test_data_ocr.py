"""OCR task: counts of the shipped data, fold/valid/train splits, formats and malformed input."""

import numpy as np
import pytest

from searnn.data.ocr import PIXELS, OcrConfig, letter_vocab, load
from searnn.errors import DataError


@pytest.fixture(scope="module")
def task():
    return load(OcrConfig())


def word_ids(split):
    return {ex.meta["word_id"] for ex in split}


def test_counts_match_source_md(task):
    assert task.info["words"] == 6877 and task.info["letters"] == 52152
    assert len(task.test) == 626  # fold 0
    assert len(task.train) + len(task.valid) == 6877 - 626
    assert len(task.valid) == round(0.1 * (6877 - 626))
    assert all(ex.meta["fold"] == 0 for ex in task.test)
    assert sum(len(ex.tgt) for ex in task.test) == 4617  # letters in fold 0
    assert max(len(ex.tgt) for s in (task.train, task.valid, task.test) for ex in s) == 14


def test_splits_disjoint_and_deterministic(task):
    tr, va, te = word_ids(task.train), word_ids(task.valid), word_ids(task.test)
    assert not (tr & va) and not (tr & te) and not (va & te)
    assert len(tr | va | te) == 6877
    again = load(OcrConfig(limit_train=10))
    assert word_ids(again.valid) == va and word_ids(again.test) == te
    assert [ex.meta["word_id"] for ex in again.train] == [ex.meta["word_id"] for ex in task.train[:10]]
    other = load(OcrConfig(split_seed=7, test_fold=3, limit_train=5))
    assert word_ids(other.valid) != va and all(ex.meta["fold"] == 3 for ex in other.test)


def test_task_fields(task):
    assert task.fixed_length and task.metric == "cer" and task.cost == "hamming" and task.lower_is_better
    assert task.src_vocabs == [] and task.src_feature_dim == PIXELS
    assert task.tgt_vocab.itos[4:] == list("abcdefghijklmnopqrstuvwxyz")
    ex = task.train[0]
    assert ex.src.shape == (len(ex.tgt), PIXELS) and ex.src.dtype == np.float32
    assert set(np.unique(ex.src)) <= {0.0, 1.0}


def test_parse_source_and_format_output(task):
    ex = task.test[0]
    line = " ".join(str(int(v)) for v in ex.src.reshape(-1))
    assert np.array_equal(task.parse_source(line), ex.src)
    assert task.format_output(letter_vocab().encode(list("hello")) + [2, 5]) == "hello"
    with pytest.raises(DataError, match="multiple of 128"):
        task.parse_source("0 1 0")
    with pytest.raises(DataError, match="0 or 1"):
        task.parse_source(" ".join(["0"] * 127 + ["2"]))
    with pytest.raises(DataError, match="empty"):
        task.parse_source("  ")


def letter_line(lid, letter, next_id, word_id, pos, fold, pixels="0"):
    return "\t".join([str(lid), letter, str(next_id), str(word_id), str(pos), str(fold)] + [pixels] * PIXELS) + "\t"


def test_small_file_words_and_errors(tmp_path):
    lines = [
        letter_line(1, "h", 2, 1, 1, 0),
        letter_line(2, "i", -1, 1, 2, 0, "1"),
        letter_line(3, "o", 4, 2, 1, 1),
        letter_line(4, "k", -1, 2, 2, 1),
    ]
    (tmp_path / "letter.data").write_text("\n".join(lines) + "\n")
    task = load(OcrConfig(data_dir=str(tmp_path), valid_fraction=0.0))
    assert [task.format_output(ex.tgt) for ex in task.test] == ["hi"]
    assert [task.format_output(ex.tgt) for ex in task.train] == ["ok"]
    assert task.test[0].src[1].sum() == PIXELS

    (tmp_path / "letter.data").write_text("\n".join(lines[:1] + ["1\tx\t2"] + lines[2:]) + "\n")
    with pytest.raises(DataError, match=r"letter\.data:2: expected 134 fields"):
        load(OcrConfig(data_dir=str(tmp_path)))
    (tmp_path / "letter.data").write_text("\n".join(lines[:1] + [letter_line(2, "i", -1, 1, 2, 0, "7")]) + "\n")
    with pytest.raises(DataError, match=r"letter\.data:2: pixels"):
        load(OcrConfig(data_dir=str(tmp_path)))
    (tmp_path / "letter.data").write_text("\n".join([letter_line(1, "h", 9, 1, 1, 0)] + lines[1:]) + "\n")
    with pytest.raises(DataError, match=r"letter\.data:1: word 1: next_id 9, expected 2"):
        load(OcrConfig(data_dir=str(tmp_path)))
    (tmp_path / "letter.data").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="no word in test_fold 5"):
        load(OcrConfig(data_dir=str(tmp_path), test_fold=5))
