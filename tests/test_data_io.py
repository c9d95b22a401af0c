"""searnn.data.io: transparent gzip reading, file lookup errors, seeded splits, the one-stream layout."""

import gzip

import pytest

from searnn.data.io import (
    apply_limit,
    find_file,
    holdout_split,
    open_text,
    read_lines,
    resolve_data_dir,
    seeded_subset,
    token_stream,
)
from searnn.data.task import REPO_DATA
from searnn.errors import ConfigError, DataError


def test_reads_plain_and_gzip_alike(tmp_path):
    text = "héllo\r\nworld\n\nlast"
    (tmp_path / "a.txt").write_bytes(text.encode("utf-8"))
    with gzip.open(tmp_path / "b.txt", "wb") as fh:  # gzip recognised by content, not by name
        fh.write(text.encode("utf-8"))
    expected = [(1, "héllo"), (2, "world"), (3, ""), (4, "last")]
    assert list(read_lines(tmp_path / "a.txt")) == expected
    assert list(read_lines(tmp_path / "b.txt")) == expected
    with open_text(tmp_path / "b.txt") as fh:
        assert fh.read() == text


def test_missing_and_undecodable_files(tmp_path):
    with pytest.raises(DataError, match="not found"):
        list(read_lines(tmp_path / "nope.txt"))
    (tmp_path / "bad.txt").write_bytes(b"ok\n\xff\xfe\n")
    with pytest.raises(DataError, match="bad.txt.*UTF-8"):
        list(read_lines(tmp_path / "bad.txt"))


def test_find_file_prefers_plain_then_gz_and_explains_what_to_pass(tmp_path):
    (tmp_path / "x.txt.gz").write_bytes(gzip.compress(b"1\n"))
    assert find_file(tmp_path, ["x.txt"], "x.txt") == tmp_path / "x.txt.gz"
    (tmp_path / "x.txt").write_text("1\n")
    assert find_file(tmp_path, ["x.txt"], "x.txt") == tmp_path / "x.txt"
    with pytest.raises(DataError, match=r"y\.txt\[\.gz\].*--data-dir DIR containing y"):
        find_file(tmp_path, ["y.txt"], "y stuff")


def test_resolve_data_dir(tmp_path):
    assert resolve_data_dir("", "ocr", "x") == REPO_DATA / "ocr"
    assert resolve_data_dir(str(tmp_path), "ocr", "x") == tmp_path
    with pytest.raises(DataError, match="--data-dir DIR containing letter.data"):
        resolve_data_dir(str(tmp_path / "missing"), "ocr", "letter.data")


def test_holdout_split_is_seeded_disjoint_and_complete():
    keep, held = holdout_split(100, 0.1, seed=3)
    assert len(held) == 10 and sorted(keep + held) == list(range(100))
    assert keep == sorted(keep) and held == sorted(held)
    assert holdout_split(100, 0.1, seed=3) == (keep, held)
    assert holdout_split(100, 0.1, seed=4)[1] != held
    assert holdout_split(5, 0.0, seed=0) == ([0, 1, 2, 3, 4], [])
    with pytest.raises(ConfigError, match="valid_fraction"):
        holdout_split(5, 1.0, seed=0)


def test_seeded_subset_and_limit():
    items = list(range(50))
    sub = seeded_subset(items, 7, seed=1)
    assert len(sub) == 7 and sub == sorted(sub) and sub == seeded_subset(items, 7, seed=1)
    assert seeded_subset(items, 0, seed=1) == items
    assert apply_limit(items, 3) == [0, 1, 2] and apply_limit(items, 0) == items
    with pytest.raises(ConfigError, match="limit_train"):
        apply_limit(items, -1)


def test_token_stream_layout():
    assert token_stream([5, 4, 5]) == [[5], [4], [5]]
    assert token_stream([]) == []
