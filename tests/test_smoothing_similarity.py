"""Sparse token similarities and smoothed token targets (searnn.smoothing.similarity)."""

from __future__ import annotations

import gzip

import pytest
import torch

from searnn.data.vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID, Vocab
from searnn.errors import DataError
from searnn.objectives.token_smoothing import DEFAULT_EMBEDDINGS
from searnn.smoothing import similarity as sim


def _dense_topk(vectors: torch.Tensor, k: int):
    unit = vectors / vectors.norm(dim=1, keepdim=True).clamp(min=1e-12)
    full = unit @ unit.T
    full[:, [PAD_ID, BOS_ID, UNK_ID]] = float("-inf")
    full.fill_diagonal_(float("inf"))
    return full.topk(k, dim=1)


def test_topk_cosine_matches_dense_and_is_chunk_independent():
    g = torch.Generator().manual_seed(0)
    vectors = torch.randn(300, 8, generator=g)
    out = sim.topk_cosine(vectors, 7, chunk=300)
    small = sim.topk_cosine(vectors, 7, chunk=13)
    assert torch.equal(out.indices, small.indices) and torch.allclose(out.values, small.values)
    val, idx = _dense_topk(vectors, 7)
    for special in (PAD_ID, BOS_ID, UNK_ID):  # specials: themselves only, never a neighbour
        assert out.indices[special, 0] == special and torch.isinf(out.values[special, 1:]).all()
        assert not (out.indices[4:, 1:] == special).any()
    assert torch.equal(out.indices[4:, 0], torch.arange(4, 300))  # self first, similarity 1
    assert torch.allclose(out.values[4:, 0], torch.ones(296))
    assert torch.equal(out.indices[4:, 1:], idx[4:, 1:])
    assert torch.allclose(out.values[4:, 1:], val[4:, 1:], atol=1e-6)


def test_storage_is_linear_in_vocabulary():
    """No dense V x V anywhere in the result: 2 V k scalars for V = 5000, k = 10."""
    vectors = torch.randn(5000, 16, generator=torch.Generator().manual_seed(1))
    out = sim.topk_cosine(vectors, 10, chunk=512)
    assert out.num_elements() == 2 * 5000 * 10
    probs, log_probs = sim.target_distribution(out, tau=0.1)
    assert probs.shape == (5000, 10) and log_probs.shape == (5000, 10)


def test_tokens_without_vectors_have_no_neighbours():
    vectors = torch.randn(10, 4, generator=torch.Generator().manual_seed(2))
    vectors[6] = 0
    out = sim.topk_cosine(vectors, 4)
    assert out.indices[6, 0] == 6 and torch.isinf(out.values[6, 1:]).all()
    assert not (out.indices[:, 1:][torch.isfinite(out.values[:, 1:])] == 6).any()


def test_target_distribution_temperature_and_rare_promotion():
    vectors = torch.randn(50, 6, generator=torch.Generator().manual_seed(3))
    s = sim.topk_cosine(vectors, 8)
    probs, log_probs = sim.target_distribution(s, tau=0.5)
    assert torch.allclose(probs.sum(1), torch.ones(50), atol=1e-5)
    assert (probs[:, 0] >= probs[:, 1:].max(1).values - 1e-6).all()  # the ground truth is the mode
    sharp, _ = sim.target_distribution(s, tau=1e-4)
    assert torch.allclose(sharp[:, 0], torch.ones(50), atol=1e-4)  # tau -> 0: the Dirac
    freq = torch.rand(50, generator=torch.Generator().manual_seed(4)) + 0.01
    promoted, _ = sim.target_distribution(s, tau=0.5, beta=1.0, freq=freq)
    assert torch.allclose(promoted.sum(1), torch.ones(50), atol=1e-5)
    ratio = torch.minimum(freq[s.indices] / freq[:, None], freq[:, None] / freq[s.indices])
    expected = torch.softmax((s.values - ratio) / 0.5, dim=1)
    expected = torch.where(torch.isfinite(s.values), expected, torch.zeros_like(expected))
    assert torch.allclose(promoted, expected, atol=1e-6)


def test_load_word_vectors_escapes_and_errors(tmp_path):
    path = tmp_path / "vec.txt.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("'s 1 0 0\nman 0 1 0\nwoman 0 0.9 0.1\n")
    vocab = Vocab(["&apos;s", "Man", "woman", "zzz"])
    vectors, found = sim.load_word_vectors(path, vocab)
    assert found.tolist() == [False] * 4 + [True, True, True, False]
    assert vectors[4].tolist() == [1, 0, 0]
    with pytest.raises(DataError, match="not found"):
        sim.load_word_vectors(tmp_path / "missing.txt", vocab)
    bad = tmp_path / "bad.txt"
    bad.write_text("man 0 1 0\nwoman 0 x 1\n")
    with pytest.raises(DataError, match="bad.txt:2"):
        sim.load_word_vectors(bad, vocab)


def test_shipped_glove_neighbours():
    if not DEFAULT_EMBEDDINGS.is_file():
        pytest.skip("shipped GloVe subset missing")
    vocab = Vocab("man woman boy girl dog cat red blue street road".split())
    vectors, found = sim.load_word_vectors(DEFAULT_EMBEDDINGS, vocab)
    assert found[4:].all() and vectors.shape[1] == 50
    s = sim.topk_cosine(vectors, 3)
    assert s.indices[vocab.stoi["man"], 1] in (vocab.stoi["woman"], vocab.stoi["boy"])
    assert s.indices[vocab.stoi["red"], 1] == vocab.stoi["blue"]
    assert s.indices[EOS_ID, 0] == EOS_ID and torch.isinf(s.values[EOS_ID, 1:]).all()


def test_ppmi_svd_vectors_group_interchangeable_tokens():
    # ids: 4 the, 5 cat, 6 dog, 7 sat, 8 ran, 9 car, 10 drove
    seqs = [[4, 5, 7], [4, 6, 7], [4, 5, 8], [4, 6, 8], [4, 9, 10], [4, 9, 10]] * 5
    vectors, found = sim.ppmi_svd_vectors(seqs, 11, dim=4, window=1)
    assert found[4:].all() and not found[:4].any()
    s = sim.topk_cosine(vectors, 2, found)
    assert s.indices[5, 1] == 6 and s.indices[6, 1] == 5  # cat ~ dog
    assert s.indices[7, 1] == 8  # sat ~ ran


def test_output_embeddings_lookup():
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.out = torch.nn.Linear(3, 12)

    assert sim.output_embeddings(M(), 12).shape == (12, 3)
    with pytest.raises(Exception, match="output projection"):
        sim.output_embeddings(torch.nn.Linear(3, 5), 12)


def test_word_vectors_with_bom_and_bad_utf8(tmp_path):
    from searnn.data.vocab import Vocab
    from searnn.errors import DataError
    from searnn.smoothing.similarity import load_word_vectors

    vocab = Vocab.build([["cat", "dog"]])
    path = tmp_path / "vec.txt"
    path.write_bytes("\ufeffcat 1.0 2.0\ndog 3.0 4.0\n".encode())
    vectors, found = load_word_vectors(path, vocab)
    assert found[vocab.stoi["cat"]] and vectors[vocab.stoi["cat"]].tolist() == [1.0, 2.0]
    path.write_bytes(b"cat 1.0 2.0\n\xff\xfe 1.0 2.0\n")
    with pytest.raises(DataError, match="not valid UTF-8"):
        load_word_vectors(path, vocab)
