"""Exploration masks (cells, tokens), roll-in policies and schedules of :mod:`searnn.search`."""

from __future__ import annotations

import math
import random

import pytest
import torch

from searnn.data.batch import Example, collate
from searnn.data.vocab import BOS_ID, EOS_ID, PAD_ID
from searnn.decoding import greedy
from searnn.models import ModelConfig, Seq2Seq
from searnn.search.engine import output_cap
from searnn.search.exploration import (
    extended_reference,
    forced_tokens,
    last_cells,
    sample_tokens,
    select_cells,
)
from searnn.search.rollin import has_dropout, roll_in
from searnn.search.schedules import SCHEDULES, Progress

V = 12


# ----------------------------------------------------------------------------------- exploration
def test_select_cells_all_and_subsampled() -> None:
    cells = torch.tensor([1, 2, 5, 9])
    width = 9
    valid = torch.arange(width)[None, :] < cells[:, None]
    forced = last_cells(cells, width)
    assert forced.sum(1).tolist() == [1, 2, 2, 2]
    assert torch.equal(select_cells(valid, forced, 0), valid)
    torch.manual_seed(0)
    for _ in range(20):
        chosen = select_cells(valid, forced, 2)
        assert not (chosen & ~valid).any()
        assert (chosen & forced).sum() == forced.sum()  # last token cell and EOS cell always in
        assert chosen.sum(1).tolist() == [1, 2, 4, 4]
    # every free cell gets drawn sometimes (uniform without replacement)
    hits = sum(select_cells(valid, forced, 1).long() for _ in range(200))
    assert (hits[3, :7] > 0).all()


def test_extended_reference_and_forced_tokens() -> None:
    tgt = torch.tensor([[5, 6, 7, EOS_ID], [8, EOS_ID, PAD_ID, PAD_ID]])
    tgt_len = torch.tensor([4, 2])
    ext = extended_reference(tgt, tgt_len, 6)
    assert ext.tolist() == [[5, 6, 7, EOS_ID, EOS_ID, EOS_ID], [8, EOS_ID, EOS_ID, EOS_ID, EOS_ID, EOS_ID]]
    ref_len = tgt_len - 1
    only = forced_tokens(ext, ref_len, 4, V)
    assert only.sum(-1).tolist() == [[1] * 4] * 2
    assert only.float().argmax(-1).tolist() == [[5, 6, 7, EOS_ID], [8, EOS_ID, EOS_ID, EOS_ID]]
    near = forced_tokens(ext, ref_len, 4, V, neighbors=1, add_eos=True)
    as_sets = [[set(torch.nonzero(near[b, t]).flatten().tolist()) for t in range(4)] for b in range(2)]
    assert as_sets[0] == [{5, 6, EOS_ID}, {5, 6, 7, EOS_ID}, {6, 7, EOS_ID}, {7, EOS_ID}]
    assert as_sets[1] == [{8, EOS_ID}, {8, EOS_ID}, {EOS_ID}, {EOS_ID}]


def random_forced(b: int, t: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    ref = torch.randint(4, V, (b, t), generator=g)
    return forced_tokens(ref, torch.full((b,), t), t, V), ref


@pytest.mark.parametrize("mode", ["uniform", "policy", "biased", "topk"])
def test_samplers_count_and_contain_the_reference(mode: str) -> None:
    torch.manual_seed(1)
    forced, ref = random_forced(6, 5)
    logits = torch.randn(6, 5, V)
    mask = sample_tokens(mode, 3, forced, logits, temperature=2.0, exclude=(PAD_ID, BOS_ID))
    assert mask.gather(2, ref[:, :, None]).all()
    assert (mask.sum(-1) == 4).all()  # the reference + 3 drawn
    assert not mask[..., PAD_ID].any() and not mask[..., BOS_ID].any()
    # more tokens than drawable: every drawable token, nothing excluded
    full = sample_tokens(mode, 100, forced, logits, temperature=2.0, exclude=(PAD_ID, BOS_ID))
    assert (full.sum(-1) == V - 2).all()
    assert sample_tokens("all", 3, forced, logits).all()


def test_topk_picks_the_highest_logits_besides_the_forced() -> None:
    forced, _ = random_forced(4, 3, seed=2)
    logits = torch.randn(4, 3, V)
    mask = sample_tokens("topk", 2, forced, logits)
    masked = logits.masked_fill(forced, -math.inf)
    top = masked.topk(2, dim=-1).indices
    expected = forced.clone().scatter_(-1, top, True)
    assert torch.equal(mask, expected)


def test_policy_sampling_follows_the_softmax_and_biased_flattens_it() -> None:
    torch.manual_seed(3)
    n = 20000
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0]).expand(n, 1, 4)
    none = torch.zeros(n, 1, 4, dtype=torch.bool)
    freq = sample_tokens("policy", 1, none, logits).float().mean((0, 1))
    torch.testing.assert_close(freq, logits[0, 0].softmax(-1), atol=0.015, rtol=0)
    freq_b = sample_tokens("biased", 1, none, logits, temperature=4.0).float().mean((0, 1))
    torch.testing.assert_close(freq_b, (logits[0, 0] / 4).softmax(-1), atol=0.015, rtol=0)
    freq_u = sample_tokens("uniform", 1, none).float().mean((0, 1))
    torch.testing.assert_close(freq_u, torch.full((4,), 0.25), atol=0.015, rtol=0)
    # without replacement: two draws are two distinct tokens
    two = sample_tokens("policy", 2, none, logits)
    assert (two.sum(-1) == 2).all()


# ----------------------------------------------------------------------------------- roll-in
def make_model_and_batch(fixed: bool, seed: int = 0, b: int = 5):
    rng = random.Random(seed)
    examples = []
    for _ in range(b):
        n = rng.randint(1, 6)
        src_n = n if fixed else rng.randint(1, 6)
        src = [[rng.randrange(4, 10)] for _ in range(src_n)]
        examples.append(Example(src, [rng.randrange(4, V) for _ in range(n)]))
    batch = collate(examples)
    torch.manual_seed(seed)
    model = Seq2Seq(ModelConfig(emb_dim=8, hidden=12, tgt_emb_dim=6, attention="additive"), [10], None, V).double()
    with torch.no_grad():
        model.out.bias[EOS_ID] = 0.2
    return model, batch


@pytest.mark.parametrize("fixed", [True, False])
def test_learned_rollin_is_greedy_decoding(fixed: bool) -> None:
    model, batch = make_model_and_batch(fixed)
    model.eval()
    cap = output_cap(batch.tgt_len - 1, fixed, 1.5, 2)
    r = roll_in(model, batch, "learned", 0.0, cap, fixed)
    enc = model.encode(batch.src, batch.src_len)
    with torch.no_grad():
        tokens, lengths = greedy(model, enc, model.init_state(enc), cap, fixed)
    assert torch.equal(r.cells - 1, lengths)
    for b in range(batch.size):
        n = int(lengths[b])
        assert r.tokens[b, :n].tolist() == tokens[b, :n].tolist()
        assert int(r.tokens[b, n]) == EOS_ID
    if fixed:
        assert torch.equal(r.cells, batch.tgt_len)
    assert r.logits.requires_grad and r.logits.shape[:2] == r.tokens.shape
    assert len(r.states) == r.tokens.shape[0] * r.tokens.shape[1]


def test_rollin_decisions_ignore_dropout_but_logits_keep_it() -> None:
    """Decisions and roll-out states come from the eval-mode policy; the trained logits from the model's
    own (train) mode, dropout included."""
    model, batch = make_model_and_batch(False, seed=6)
    model.dropout.p = 0.5
    cap = output_cap(batch.tgt_len - 1, False, 1.5, 2)
    model.eval()
    clean = roll_in(model, batch, "learned", 0.0, cap, False)
    model.train()
    torch.manual_seed(0)
    noisy = roll_in(model, batch, "learned", 0.0, cap, False)
    assert model.training
    assert torch.equal(noisy.tokens, clean.tokens) and torch.equal(noisy.cells, clean.cells)
    torch.testing.assert_close(noisy.states.h, clean.states.h)
    assert noisy.logits.requires_grad
    assert not torch.allclose(noisy.logits, clean.logits)  # dropout on the trained logits
    ref = roll_in(model, batch, "reference", 0.0, cap, False)
    model.eval()
    ref_clean = roll_in(model, batch, "reference", 0.0, cap, False)
    torch.testing.assert_close(ref.states.h, ref_clean.states.h)


def test_has_dropout() -> None:
    assert not has_dropout(Seq2Seq(ModelConfig(hidden=4, emb_dim=4, tgt_emb_dim=4), [10], None, V))
    assert has_dropout(Seq2Seq(ModelConfig(hidden=4, emb_dim=4, tgt_emb_dim=4, dropout=0.1), [10], None, V))
    rnn_only = torch.nn.Sequential(torch.nn.GRU(4, 4, num_layers=2, dropout=0.2))
    assert has_dropout(rnn_only)


def test_mixed_rollins_with_extreme_probabilities() -> None:
    model, batch = make_model_and_batch(False, seed=4)
    model.eval()
    cap = output_cap(batch.tgt_len - 1, False, 1.5, 2)
    ref = roll_in(model, batch, "reference", 0.0, cap, False)
    learned = roll_in(model, batch, "learned", 0.0, cap, False)
    for mode in ("mixed", "mixed-cell"):
        all_ref = roll_in(model, batch, mode, 1.0, cap, False, oracle=_hamming())
        assert torch.equal(all_ref.cells, batch.tgt_len)
        assert torch.equal(all_ref.tokens, ref.tokens)
        cells = ref.cell_mask  # step-wise == teacher-forced fast path, on the cells
        torch.testing.assert_close(all_ref.logits[cells], ref.logits[cells])
        none = roll_in(model, batch, mode, 0.0, cap, False, oracle=_hamming())
        assert torch.equal(none.tokens, learned.tokens) and torch.equal(none.cells, learned.cells)


def test_mixed_rollin_mixes_per_sequence() -> None:
    model, batch = make_model_and_batch(True, seed=5, b=16)
    model.eval()
    torch.manual_seed(0)
    cap = batch.tgt_len - 1
    r = roll_in(model, batch, "mixed", 0.5, cap, True)
    assert 0 < int(r.reference_rows.sum()) < batch.size
    learned = roll_in(model, batch, "learned", 0.0, cap, True)
    gt = torch.where(batch.tgt_mask, batch.tgt, torch.full_like(batch.tgt, EOS_ID))
    for b in range(batch.size):
        expected = gt[b] if r.reference_rows[b] else learned.tokens[b]
        assert torch.equal(r.tokens[b], expected)


def _hamming():
    from searnn.costs import make_cost
    from searnn.data.vocab import Vocab

    return make_cost("hamming", Vocab([f"t{i}" for i in range(V - 4)]))


def test_output_cap() -> None:
    ref_len = torch.tensor([0, 1, 4, 10])
    assert output_cap(ref_len, True, 1.5, 2).tolist() == [0, 1, 4, 10]
    assert output_cap(ref_len, False, 1.5, 2).tolist() == [2, 4, 8, 17]


# ----------------------------------------------------------------------------------- schedules
def test_schedules() -> None:
    assert SCHEDULES["constant"](0.7, 0.9) == 0.7
    assert SCHEDULES["linear"](0.8, 0.25) == pytest.approx(0.6)
    assert SCHEDULES["linear"](0.8, 1.0) == 0.0
    sig = SCHEDULES["sigmoid"]
    assert sig(1.0, 0.0) == pytest.approx(1 / (1 + math.exp(-6)))
    assert sig(1.0, 0.5) == pytest.approx(0.5)
    assert sig(1.0, 1.0) < 0.003
    values = [sig(0.5, x / 10) for x in range(11)]
    assert values == sorted(values, reverse=True)


def test_progress_counts_epochs_and_batches() -> None:
    p = Progress()
    assert p.value == 0.0
    p.start_epoch(0, 4)
    for _ in range(10):
        p.step()
    assert p.value == 0.0  # batches per epoch unknown during the first epoch
    p.start_epoch(1, 4)
    assert p.value == pytest.approx(0.25)
    for _ in range(5):
        p.step()
    assert p.value == pytest.approx(0.375)
    p.start_epoch(3, 4)
    for _ in range(50):
        p.step()
    assert p.value == 1.0
