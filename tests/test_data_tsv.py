"""TSV task: the user's own 'source<TAB>target' files, options and every error path (file:line)."""

import gzip

import pytest

from searnn.data.tsv import TsvConfig, load
from searnn.data.vocab import UNK_ID
from searnn.errors import ConfigError, DataError


def make_files(tmp_path, train=None, valid=None, test=None):
    contents = {
        "train": train if train is not None else "abc\tABC\nab\tAB\r\nb c\tB C\n",
        "valid": valid if valid is not None else "ca\tCA\n",
        "test": test if test is not None else "abd\tABD\n",
    }
    for name, text in contents.items():
        (tmp_path / f"{name}.tsv").write_text(text)
    return TsvConfig(**{name: str(tmp_path / f"{name}.tsv") for name in contents})


def test_char_happy_path(tmp_path):
    task = load(make_files(tmp_path))
    assert task.info["sizes"] == {"train": 3, "valid": 1, "test": 1}
    assert task.metric == "edit" and task.cost == "edit" and task.lower_is_better and not task.fixed_length
    assert task.format_output(task.train[0].tgt) == "ABC"
    assert task.format_output(task.train[2].tgt) == "B C"  # CRLF stripped, spaces are characters
    assert task.test[0].tgt[-1] == UNK_ID and task.test[0].meta["ref_tokens"] == list("ABD")
    assert task.test[0].src[-1] == [UNK_ID]
    src_vocab = task.src_vocabs[0]
    assert task.parse_source("ba") == [[src_vocab.stoi["b"]], [src_vocab.stoi["a"]]]


def test_space_tokens_bleu_gzip_and_relative_paths(tmp_path):
    (tmp_path / "train.tsv.gz").write_bytes(gzip.compress(b"ein haus\ta house\nein boot\ta boat\n"))
    (tmp_path / "valid.tsv").write_text("ein haus\ta house\n")
    (tmp_path / "test.tsv").write_text("das  haus\tthe house\n")
    cfg = TsvConfig(data_dir=str(tmp_path), train="train.tsv.gz", valid="valid.tsv", test="test.tsv",
                    tokenize="space", metric="bleu", min_count=2, limit_train=1)
    task = load(cfg)
    assert task.metric == "bleu" and task.cost == "bleu" and not task.lower_is_better
    assert len(task.train) == 1 and task.tgt_vocab.itos[4:] == ["a"]  # min_count 2 over the whole train file
    assert task.format_output(task.test[0].tgt) == "<unk> <unk>"
    assert task.test[0].meta["ref_tokens"] == ["the", "house"]


def test_fixed_length_and_cer(tmp_path):
    cfg = make_files(tmp_path, train="abc\txyz\n", valid="a\tx\n", test="b\ty\n")
    cfg.fixed_length, cfg.metric = True, "cer"
    task = load(cfg)
    assert task.fixed_length and task.cost == "hamming"
    make_files(tmp_path, train="abc\txyz\nab\txyz\n")
    with pytest.raises(DataError, match=r"train\.tsv:2: fixed_length .* 2 tokens and the target 3"):
        load(cfg)


@pytest.mark.parametrize(
    ("train", "message"),
    [
        ("abc\tABC\nno tab here\n", r"train\.tsv:2: .*no tab"),
        ("abc\tABC\na\tb\tc\n", r"train\.tsv:2: .*2 tabs"),
        ("abc\tABC\n\tABC\n", r"train\.tsv:2: empty source"),
        ("abc\tABC\nabc\t\n", r"train\.tsv:2: empty target"),
        ("abc\tABC\n\nab\tAB\n", r"train\.tsv:2: .*blank line"),
        ("", r"train\.tsv: no examples"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path, train, message):
    with pytest.raises(DataError, match=message):
        load(make_files(tmp_path, train=train))


def test_space_tokenized_empty_side(tmp_path):
    cfg = make_files(tmp_path, test="a b\t   \n")
    cfg.tokenize = "space"
    with pytest.raises(DataError, match=r"test\.tsv:1: empty target"):
        load(cfg)


def test_missing_files_and_bad_options(tmp_path):
    cfg = make_files(tmp_path)
    with pytest.raises(DataError, match="needs a valid file: pass --valid FILE"):
        load(TsvConfig(train=cfg.train, test=cfg.test))
    with pytest.raises(DataError, match=r"test file .*nope\.tsv.* not found"):
        load(TsvConfig(train=cfg.train, valid=cfg.valid, test=str(tmp_path / "nope.tsv")))
    with pytest.raises(ConfigError, match="char, space"):
        load(TsvConfig(train=cfg.train, valid=cfg.valid, test=cfg.test, tokenize="bpe"))
    with pytest.raises(ConfigError, match="cer, edit, bleu"):
        load(TsvConfig(train=cfg.train, valid=cfg.valid, test=cfg.test, metric="f1"))
