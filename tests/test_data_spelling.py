"""Spelling task: the 43-symbol alphabet, segmenting, noise rate, seeded subsets, formats."""

import string
from collections import defaultdict

import pytest

from searnn.data.io import read_lines
from searnn.data.spelling import ALPHABET, SpellingConfig, load, map_text
from searnn.data.vocab import SPECIALS
from searnn.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def task():
    return load(SpellingConfig(train_size=3000))


def src_ids(ex):
    return [s[0] for s in ex.src]


def write_corpus(directory, train, valid=None, test=None):
    for name, lines in (("train", train), ("valid", valid or train[:2]), ("test", test or train[-2:])):
        (directory / f"sentences.{name}.txt").write_text("\n".join(lines) + "\n")


def test_alphabet_has_43_symbols(task):
    assert len(ALPHABET) == 43 and len(set(ALPHABET)) == 43
    assert set(string.ascii_lowercase + string.digits + " #") <= set(ALPHABET)
    assert task.tgt_vocab is task.src_vocabs[0]
    assert len(task.tgt_vocab) == len(SPECIALS) + 43 and task.info["vocab_sizes"]["alphabet"] == 43
    assert map_text("Ab 1\t!é,") == task.tgt_vocab.encode(list("ab 1 ##,"))


def test_task_fields_and_sizes(task):
    assert task.metric == "edit" and task.cost == "edit" and task.lower_is_better and not task.fixed_length
    assert len(task.train) == 3000
    assert len(task.valid) == task.info["segments_available"]["valid"] > 669
    assert all(len(ex.src) == len(ex.tgt) and 1 <= len(ex.tgt) <= 10 for ex in task.train + task.valid)


def test_segments_cover_the_whole_text(task):
    by_sentence = defaultdict(list)
    for ex in task.test:
        by_sentence[ex.meta["sentence"]].append(ex)
    lines = [line.strip() for _, line in read_lines(task.info["files"]["test"]) if line.strip()]
    assert len(by_sentence) == len(lines) == 669
    for k, line in enumerate(lines):
        segs = by_sentence[k]
        assert [ex.meta["offset"] for ex in segs] == list(range(0, len(line), 10))
        assert all(len(ex.tgt) == 10 for ex in segs[:-1]) and 1 <= len(segs[-1].tgt) <= 10
        assert [i for ex in segs for i in ex.tgt] == map_text(line)


def test_noise_rate_close_to_p(task):
    pairs = [(a, b) for ex in task.valid + task.test for a, b in zip(src_ids(ex), ex.tgt, strict=True)]
    changed = sum(a != b for a, b in pairs) / len(pairs)
    assert abs(changed - 0.3 * 42 / 43) < 0.01  # a replacement may draw the same symbol
    assert all(task.tgt_vocab.itos[a] in ALPHABET for a, _ in pairs)


def test_zero_noise_gives_identical_source_and_target(tmp_path):
    write_corpus(tmp_path, ["Hello, World!", "It was the best of times.", "Short"])
    task = load(SpellingConfig(data_dir=str(tmp_path), noise=0.0))
    assert all(src_ids(ex) == ex.tgt for ex in task.train + task.valid + task.test)
    assert [task.format_output(ex.tgt) for ex in task.train] == [
        "hello, wor", "ld#", "it was the", " best of t", "imes.", "short"]


def test_high_noise_rate(tmp_path):
    write_corpus(tmp_path, ["the quick brown fox jumps over the lazy dog " * 50] * 10)
    task = load(SpellingConfig(data_dir=str(tmp_path), noise=0.5))
    pairs = [(a, b) for ex in task.train for a, b in zip(src_ids(ex), ex.tgt, strict=True)]
    assert abs(sum(a != b for a, b in pairs) / len(pairs) - 0.5 * 42 / 43) < 0.02


def test_deterministic_and_seeded(task):
    again = load(SpellingConfig(train_size=3000, limit_train=100))
    assert [src_ids(ex) for ex in again.train] == [src_ids(ex) for ex in task.train[:100]]
    assert [src_ids(ex) for ex in again.valid] == [src_ids(ex) for ex in task.valid]
    keys = [(ex.meta["sentence"], ex.meta["offset"]) for ex in task.train]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    other = load(SpellingConfig(train_size=3000, split_seed=5, limit_train=1))
    assert [src_ids(ex) for ex in other.valid] != [src_ids(ex) for ex in task.valid]
    assert [ex.tgt for ex in other.valid] == [ex.tgt for ex in task.valid]


def test_parse_source_and_format_output(task):
    src = task.parse_source("  Hëllo World ")
    assert task.format_output([s[0] for s in src]) == "h#llo world"
    assert task.format_output(task.tgt_vocab.encode(list("ab")) + [3, 2, 7]) == "ab#"
    with pytest.raises(DataError):
        task.parse_source("   ")


def test_bad_options_and_missing_files(tmp_path):
    with pytest.raises(ConfigError, match="segment_len"):
        load(SpellingConfig(segment_len=0))
    with pytest.raises(ConfigError, match="noise"):
        load(SpellingConfig(noise=1.5))
    (tmp_path / "sentences.train.txt").write_text("abc\n")
    with pytest.raises(DataError, match=r"sentences\.valid\.txt\[\.gz\]"):
        load(SpellingConfig(data_dir=str(tmp_path)))
