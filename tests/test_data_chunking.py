"""Chunking task: CoNLL-2000 counts, held-out validation, vocabularies, formats, malformed input."""

import pytest

from searnn.data.chunking import CONLL2000_TAGS, ChunkingConfig, load, normalize_iob, parse_tokens
from searnn.data.vocab import UNK_ID, Vocab
from searnn.errors import DataError


@pytest.fixture(scope="module")
def task():
    return load(ChunkingConfig())


def sentence_key(ex):
    return tuple(ex.meta["words"])


def test_counts_match_source_md(task):
    assert len(task.train) + len(task.valid) == 8936
    assert len(task.valid) == round(0.1 * 8936)
    assert len(task.test) == 2012
    assert sum(len(ex.tgt) for ex in task.test) == 47377
    assert sum(len(ex.tgt) for ex in task.train + task.valid) == 211727


def test_tag_vocab_is_the_fixed_sorted_list(task):
    assert len(CONLL2000_TAGS) == 23 and list(CONLL2000_TAGS) == sorted(CONLL2000_TAGS)
    assert task.tgt_vocab.itos[4:] == list(CONLL2000_TAGS)
    assert task.fixed_length and task.metric == "f1" and task.cost == "f1" and not task.lower_is_better


def test_sources_two_streams_and_normalised_words(task):
    words, pos = task.src_vocabs
    ex = task.train[0]
    assert len(ex.src) == len(ex.tgt) and all(len(p) == 2 for p in ex.src)
    assert all(w == w.lower() for w in words.itos[4:])
    assert not any(c.isdigit() and c != "0" for w in words.itos[4:] for c in w)
    assert "0.0" in words  # e.g. "1.8" -> "0.0"
    assert "NN" in pos and task.info["vocab_sizes"]["src"] == [len(words), len(pos)]


def test_split_deterministic_and_disjoint(task):
    train = [sentence_key(ex) for ex in task.train]
    valid = [sentence_key(ex) for ex in task.valid]
    again = load(ChunkingConfig(limit_train=20))
    assert [sentence_key(ex) for ex in again.valid] == valid
    assert [sentence_key(ex) for ex in again.train] == train[:20]
    assert again.src_vocabs[0].itos == task.src_vocabs[0].itos  # vocab from the whole train split
    # disjoint by position in the file: the two splits partition the 8,936 training sentences
    assert len(train) + len(valid) == 8936
    other = load(ChunkingConfig(split_seed=99, limit_train=1))
    assert [sentence_key(ex) for ex in other.valid] != valid


def test_min_count(task):
    rare = load(ChunkingConfig(min_count=1, limit_train=1))
    assert len(rare.src_vocabs[0]) > len(task.src_vocabs[0])


def test_parse_source_and_format_output(task):
    src = task.parse_source("He/PRP reckons/VBZ 1/2/CD xyzzyq/NN")
    words, pos = task.src_vocabs
    assert src[0] == [words.stoi["he"], pos.stoi["PRP"]]
    assert src[2][1] == pos.stoi["CD"] and src[3][0] == UNK_ID
    assert parse_tokens("a/b/c d/e") == (["a/b", "d"], ["c", "e"])
    for bad in ("word", "/NN", "word/", ""):
        with pytest.raises(DataError):
            task.parse_source(bad)
    ids = task.tgt_vocab.encode(["B-NP", "I-NP", "O"])
    assert task.format_output(ids) == "B-NP I-NP O"


def test_small_files_and_malformed_lines(tmp_path):
    train = "The DT B-NP\ncat NN I-NP\n\n\nsat VBD B-VP\n"
    (tmp_path / "train.txt").write_text(train)
    (tmp_path / "test.txt").write_text("A DT B-NP\ndog NN I-NP\n\n")
    task = load(ChunkingConfig(data_dir=str(tmp_path), valid_fraction=0.0, min_count=1))
    assert [len(ex.tgt) for ex in task.train] == [2, 1] and len(task.test) == 1 and task.valid == []
    (tmp_path / "test.txt").write_text("A DT B-NP\ndog NN\n")
    with pytest.raises(DataError, match=r"test\.txt:2: expected 3 fields"):
        load(ChunkingConfig(data_dir=str(tmp_path)))


def test_i_tags_that_open_a_chunk_become_b_tags_on_load(tmp_path):
    """conlleval reads an I-X after O / another type (or first) as a chunk start; the loader writes B-X."""
    assert normalize_iob("I-NP I-NP O I-VP B-VP I-VP I-NP I-XX".split()) == (
        "B-NP I-NP O B-VP B-VP I-VP B-NP B-XX".split()
    )
    assert normalize_iob([]) == [] and normalize_iob(["O", "B-NP"]) == ["O", "B-NP"]
    (tmp_path / "train.txt").write_text("The DT I-NP\ncat NN I-NP\nsat VBD I-VP\n\nA DT I-ZZ\n")
    (tmp_path / "test.txt").write_text("A DT O\ndog NN I-NP\n\n")
    task = load(ChunkingConfig(data_dir=str(tmp_path), valid_fraction=0.0, min_count=1))
    decode = task.tgt_vocab.decode
    assert [decode(ex.tgt) for ex in task.train] == [["B-NP", "I-NP", "B-VP"], ["B-ZZ"]]
    assert decode(task.test[0].tgt) == ["O", "B-NP"]
    assert "B-ZZ" in task.tgt_vocab.stoi  # a type only seen with I- still gets its B- tag


def test_iob_normalisation_leaves_the_chunk_f1_unchanged():
    """Chunk F1 (ours and seqeval's conlleval mode) is the same on raw and normalised tags."""
    import random

    from seqeval.metrics import f1_score

    from searnn.metrics import METRICS

    rng = random.Random(4)
    tags = ["O", "B-NP", "I-NP", "B-VP", "I-VP"]
    vocab = Vocab(tags)
    gold = [[rng.choice(tags) for _ in range(rng.randint(1, 9))] for _ in range(300)]
    pred = [[t if rng.random() < 0.7 else rng.choice(tags) for t in g] for g in gold]
    assert sum(g != normalize_iob(g) for g in gold) > 50  # many I- openings

    def f1(hyps: list[list[str]], refs: list[list[str]]) -> float:
        return METRICS["f1"]([vocab.encode(h) for h in hyps], [[vocab.encode(r)] for r in refs], vocab).value

    raw = f1(pred, gold)
    assert raw == pytest.approx(100 * f1_score(gold, pred))
    assert f1(pred, [normalize_iob(g) for g in gold]) == pytest.approx(raw)
    assert f1([normalize_iob(p) for p in pred], [normalize_iob(g) for g in gold]) == pytest.approx(raw)
    assert 100 * f1_score([normalize_iob(g) for g in gold], pred) == pytest.approx(raw)
