"""Translation task: Multi30k sizes, length filter, vocabularies, raw references, IWSLT'14 layout, errors."""

import gzip

import pytest

from searnn.data.translation import TranslationConfig, load
from searnn.data.vocab import UNK_ID
from searnn.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def task():
    return load(TranslationConfig())


def write_pair(directory, stem, de_lines, en_lines, gz=False):
    for lang, lines in (("de", de_lines), ("en", en_lines)):
        data = ("\n".join(lines) + "\n").encode()
        if gz:
            (directory / f"{stem}.{lang}.gz").write_bytes(gzip.compress(data))
        else:
            (directory / f"{stem}.{lang}").write_bytes(data)


def test_multi30k_sizes_before_and_after_filtering(task):
    assert task.info["raw_sizes"] == {"train": 29000, "valid": 1014, "test": 1000}
    assert task.info["sizes"]["train"] == 29000 - task.info["filtered_long"]
    assert len(task.valid) == 1014 and len(task.test) == 1000  # never filtered
    assert all(len(ex.tgt) <= 50 and len(ex.src) <= 50 for ex in task.train)
    unfiltered = load(TranslationConfig(max_len=0, limit_train=5))
    assert unfiltered.info["filtered_long"] == 0 and len(unfiltered.train) == 5
    assert task.info["skipped_empty"] == {"train": 0, "valid": 0, "test": 0}


def test_task_fields_and_vocabularies(task):
    assert task.metric == "bleu" and task.cost == "bleu" and not task.lower_is_better and not task.fixed_length
    src_vocab, = task.src_vocabs
    assert 5000 < len(task.tgt_vocab) < 10300 and 5000 < len(src_vocab) < 18800  # min_count 2 < all types
    assert all(len(p) == 1 for ex in task.train[:50] for p in ex.src)
    again = load(TranslationConfig(limit_train=10))
    assert again.tgt_vocab.itos == task.tgt_vocab.itos and len(again.train) == 10
    assert [ex.tgt for ex in again.train] == [ex.tgt for ex in task.train[:10]]


def test_references_keep_real_tokens(task):
    for ex in task.valid + task.test:
        assert len(ex.meta["ref_tokens"]) == len(ex.tgt)
    with_oov = [ex for ex in task.test if UNK_ID in ex.tgt]
    assert with_oov, "the test set has words unseen (or rare) in train"
    ex = with_oov[0]
    k = ex.tgt.index(UNK_ID)
    assert ex.meta["ref_tokens"][k] not in task.tgt_vocab
    assert task.format_output(ex.tgt).split()[k] == "<unk>"
    assert task.test[0].meta["line"] == 1


def test_parse_source_and_format_output(task):
    src = task.parse_source("Ein Mann .")
    src_vocab = task.src_vocabs[0]
    assert src == [[src_vocab.stoi["ein"]], [src_vocab.stoi["mann"]], [src_vocab.stoi["."]]]
    assert task.format_output(task.tgt_vocab.encode(["a", "man", "."]) + [2, 9]) == "a man ."
    with pytest.raises(DataError):
        task.parse_source(" ")


def test_iwslt14_needs_a_data_dir():
    with pytest.raises(DataError, match="not shipped.*--data-dir DIR containing train.de"):
        load(TranslationConfig(dataset="iwslt14"))
    with pytest.raises(ConfigError, match="multi30k, iwslt14"):
        load(TranslationConfig(dataset="wmt"))
    with pytest.raises(ConfigError):
        load(TranslationConfig(src_lang="en", tgt_lang="en"))


def test_iwslt14_layout_train_sample_fallback_and_filters(tmp_path):
    write_pair(tmp_path, "train_sample", ["ein haus", "", "x " * 60], ["a house", "empty", "y " * 3], gz=True)
    write_pair(tmp_path, "valid", ["ein haus"], ["a house"])
    write_pair(tmp_path, "test", ["Das Haus " * 30], ["the house " * 30])
    task = load(TranslationConfig(dataset="iwslt14", data_dir=str(tmp_path), min_count=1))
    assert task.info["train_sample_used"] and task.info["files"]["train"][0].endswith("train_sample.de.gz")
    assert task.info["skipped_empty"]["train"] == 1 and task.info["filtered_long"] == 1
    assert len(task.train) == 1 and len(task.test) == 1 and len(task.test[0].tgt) == 60  # test not filtered
    assert task.test[0].meta["ref_tokens"][:2] == ["the", "house"]  # lowercased

    write_pair(tmp_path, "train", ["ein haus", "das boot"], ["a house", "the boat"])
    task = load(TranslationConfig(dataset="iwslt14", data_dir=str(tmp_path), min_count=1))
    assert not task.info["train_sample_used"] and len(task.train) == 2

    write_pair(tmp_path, "valid", ["ein haus", "zwei"], ["a house"])
    with pytest.raises(DataError, match=r"valid\.de has 2 lines but .*valid\.en has 1"):
        load(TranslationConfig(dataset="iwslt14", data_dir=str(tmp_path)))


def test_missing_split_file(tmp_path):
    write_pair(tmp_path, "train", ["a"], ["b"])
    with pytest.raises(DataError, match=r"no valid source file.*valid\.de\[\.gz\].*--data-dir"):
        load(TranslationConfig(dataset="iwslt14", data_dir=str(tmp_path)))
