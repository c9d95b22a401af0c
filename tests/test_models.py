"""Tests of the encoder-decoder: step API vs teacher forcing, state rows, padding invariance."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
import torch

from searnn.errors import ConfigError
from searnn.models import DecoderState, ModelConfig, RowLayout, Seq2Seq

SRC_VOCABS = [13, 7]  # two token streams (words + POS)
FEAT_DIM = 6
TGT_VOCAB = 11


def make_model(features: bool = False, seed: int = 0, **kwargs: object) -> Seq2Seq:
    torch.manual_seed(seed)
    defaults: dict[str, object] = dict(emb_dim=8, hidden=6, tgt_emb_dim=5)
    defaults.update(kwargs)
    cfg = ModelConfig(**defaults)  # type: ignore[arg-type]
    model = Seq2Seq(cfg, [] if features else SRC_VOCABS, FEAT_DIM if features else None, TGT_VOCAB)
    return model.eval()


def make_src(features: bool, src_len: list[int], seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    b, s = len(src_len), max(src_len)
    if features:
        src = torch.randn(b, s, FEAT_DIM, generator=g)
    else:
        src = torch.stack([torch.randint(4, v, (b, s), generator=g) for v in SRC_VOCABS], dim=-1)
    for i, n in enumerate(src_len):
        src[i, n:] = 0
    return src, torch.tensor(src_len)


def make_dec_input(b: int, t: int, seed: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    dec = torch.randint(3, TGT_VOCAB, (b, t), generator=g)
    dec[:, 0] = 1  # BOS
    return dec


# ---------------------------------------------------------------------------- config


def test_config_fields_have_help() -> None:
    for f in dataclasses.fields(ModelConfig):
        assert f.metadata.get("help"), f.name


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cell": "rnn"},
        {"attention": "dot"},
        {"hidden": 0},
        {"enc_layers": -1},
        {"dropout": 1.0},
        {"dropout": -0.1},
        {"bidirectional": "yes"},
    ],
)
def test_config_rejects_bad_values(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        ModelConfig(**kwargs)


def test_config_unknown_name_lists_valid() -> None:
    with pytest.raises(ConfigError, match="gru, lstm"):
        ModelConfig(cell="transformer")


# ---------------------------------------------------------------------------- step vs forward

BOOLS = [False, True]
COMBOS = list(itertools.product(["gru", "lstm"], ["none", "additive", "multiplicative"], BOOLS, BOOLS, BOOLS))


@pytest.mark.parametrize(("cell", "attention", "input_feed", "features", "bidirectional"), COMBOS)
def test_step_loop_matches_forward(
    cell: str, attention: str, input_feed: bool, features: bool, bidirectional: bool
) -> None:
    model = make_model(
        features, cell=cell, attention=attention, input_feed=input_feed, bidirectional=bidirectional
    )
    src, src_len = make_src(features, [5, 2, 4])
    dec = make_dec_input(3, 4)
    with torch.no_grad():
        logits = model(src, src_len, dec)
        assert logits.shape == (3, 4, TGT_VOCAB)
        enc = model.encode(src, src_len)
        state = model.init_state(enc)
        steps = []
        for t in range(dec.shape[1]):
            step_logits, state = model.step(enc, state, dec[:, t])
            steps.append(step_logits)
    torch.testing.assert_close(torch.stack(steps, 1), logits, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("cell", "attention", "input_feed", "layers"),
    [
        ("gru", "none", False, 1),
        ("gru", "additive", False, 2),
        ("lstm", "multiplicative", False, 2),
        ("lstm", "additive", True, 2),
        ("gru", "multiplicative", True, 1),
        ("lstm", "none", False, 3),
    ],
)
def test_teacher_forced_states_restart_any_cell(cell: str, attention: str, input_feed: bool, layers: int) -> None:
    model = make_model(
        cell=cell, attention=attention, input_feed=input_feed, dec_layers=layers, enc_layers=2, bidirectional=True
    )
    src, src_len = make_src(False, [3, 6, 1])
    b, t = 3, 5
    dec = make_dec_input(b, t)
    with torch.no_grad():
        enc = model.encode(src, src_len)
        logits, states = model.teacher_forced_states(enc, dec)
        torch.testing.assert_close(logits, model(src, src_len, dec), atol=1e-5, rtol=1e-5)
        assert len(states) == t * b
        assert states.h.shape == (layers, t * b, 6)
        assert (states.c is not None) == (cell == "lstm")
        assert (states.feed is not None) == input_feed
        # rows t*B + b, in a shuffled order with repeats (grouped attention layout)
        rows = torch.cat([torch.randperm(t * b, generator=torch.Generator().manual_seed(3)), torch.tensor([0, 0, 7])])
        sub = states.index(rows)
        tokens = dec.t().reshape(-1)[rows]
        step_logits, _ = model.step(enc, sub, tokens)
    expected = logits.transpose(0, 1).reshape(t * b, -1)[rows]
    torch.testing.assert_close(step_logits, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("cell", "attention", "input_feed"), [("gru", "none", False), ("lstm", "additive", True),
                                                          ("gru", "multiplicative", False)])
def test_aligned_input_step_and_restart(cell: str, attention: str, input_feed: bool) -> None:
    """With aligned_input, step t also reads the encoder output at position t (zeros past the end)."""
    model = make_model(cell=cell, attention=attention, input_feed=input_feed, aligned_input=True, bidirectional=True)
    src, src_len = make_src(False, [3, 5, 1])
    b, t = 3, 6  # longer than every source: exercises the zero padding
    dec = make_dec_input(b, t)
    with torch.no_grad():
        enc = model.encode(src, src_len)
        logits, states = model.teacher_forced_states(enc, dec)
        torch.testing.assert_close(logits, model(src, src_len, dec), atol=1e-5, rtol=1e-5)
        state, steps = model.init_state(enc), []
        for k in range(t):
            step_logits, state = model.step(enc, state, dec[:, k])
            steps.append(step_logits)
        torch.testing.assert_close(torch.stack(steps, 1), logits, atol=1e-5, rtol=1e-5)
        rows = torch.tensor([17, 0, 4, 9, 9, 12])
        step_logits, _ = model.step(enc, states.index(rows), dec.t().reshape(-1)[rows])
        torch.testing.assert_close(step_logits, logits.transpose(0, 1).reshape(t * b, -1)[rows], atol=1e-5, rtol=1e-5)
        # the aligned input matters: changing the source at position 1 changes the logits of step 1
        src2 = src.clone()
        src2[1, 1] = torch.where(src2[1, 1] == 4, 5, 4)
        other = model(src2, src_len, dec)
        assert not torch.allclose(other[1, 1], logits[1, 1])


def test_teacher_forced_states_two_steps_ahead() -> None:
    """Continuing from a mid-sequence state with step() follows the teacher-forced logits."""
    model = make_model(cell="lstm", attention="additive", dec_layers=2)
    src, src_len = make_src(False, [4, 2])
    dec = make_dec_input(2, 5)
    with torch.no_grad():
        enc = model.encode(src, src_len)
        logits, states = model.teacher_forced_states(enc, dec)
        state = states.index(torch.tensor([2 * 2 + 0, 2 * 2 + 1]))  # cell t=2 of both examples
        for t in range(2, 5):
            step_logits, state = model.step(enc, state, dec[:, t])
            torch.testing.assert_close(step_logits, logits[:, t], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("input_feed", [False, True])
def test_advance_moves_to_next_teacher_forced_state(input_feed: bool) -> None:
    model = make_model(cell="lstm", attention="additive", input_feed=input_feed, dec_layers=2)
    src, src_len = make_src(False, [4, 2, 3])
    b, t = 3, 4
    dec = make_dec_input(b, t)
    with torch.no_grad():
        enc = model.encode(src, src_len)
        _, states = model.teacher_forced_states(enc, dec)
        moved = model.advance(enc, states.index(torch.arange((t - 1) * b)), dec[:, : t - 1].t().reshape(-1))
        target = states.index(torch.arange(b, t * b))
    for name in ("h", "c", "feed"):
        if getattr(target, name) is not None:
            torch.testing.assert_close(getattr(moved, name), getattr(target, name), atol=1e-5, rtol=1e-5)


def test_teacher_forced_states_gradients() -> None:
    model = make_model(cell="lstm", attention="multiplicative").train()
    src, src_len = make_src(False, [4, 2])
    dec = make_dec_input(2, 3)
    enc = model.encode(src, src_len)
    logits, states = model.teacher_forced_states(enc, dec)
    assert logits.requires_grad and not states.h.requires_grad and not states.c.requires_grad  # type: ignore[union-attr]
    _, states = model.teacher_forced_states(enc, dec, detach=False)
    assert states.h.requires_grad and states.c.requires_grad  # type: ignore[union-attr]


# ---------------------------------------------------------------------------- state rows and layouts


def test_decoder_state_index_cat_round_trip() -> None:
    h = torch.randn(2, 5, 3)
    state = DecoderState(h=h, c=h + 1, feed=torch.randn(5, 3), batch_idx=torch.tensor([0, 0, 1, 2, 2]))
    assert len(state) == 5
    parts = [state.index(torch.tensor([0, 1])), state.index(torch.tensor([2])), state.index(torch.tensor([3, 4]))]
    back = DecoderState.cat(parts)
    for name in ("h", "c", "feed", "batch_idx"):
        assert torch.equal(getattr(back, name), getattr(state, name))
    perm = torch.tensor([4, 2, 0, 3, 1])
    inv = torch.argsort(perm)
    again = state.index(perm).index(inv)
    assert torch.equal(again.h, state.h) and torch.equal(again.c, state.c)  # type: ignore[arg-type]
    rep = state.repeat_interleave(3)
    assert len(rep) == 15 and torch.equal(rep.h[:, 3:6], state.h[:, 1:2].expand(-1, 3, -1))
    assert rep.to("cpu").batch_idx.tolist() == [0, 0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 2, 2]
    gru_state = DecoderState(h=h, c=None, feed=None, batch_idx=torch.arange(5))
    assert DecoderState.cat([gru_state, gru_state.index(torch.tensor([1]))]).c is None


def test_row_layout_modes() -> None:
    assert RowLayout.build(torch.arange(4), 4).mode == "identity"
    grouped = RowLayout.build(torch.tensor([2, 0, 2, 1, 0, 1]), 3)
    assert grouped.mode == "grouped" and grouped.width == 2
    assert sorted(grouped.pos.tolist()) == list(range(6))  # type: ignore[union-attr]
    # rows of 2 of the 4 examples: grouped over those two (block rows 0, 1 = examples 0, 1)
    present = RowLayout.build(torch.tensor([0, 0, 0, 0, 0, 1]), 4)
    assert present.mode == "grouped" and present.examples is not None and present.examples.tolist() == [0, 1]
    assert sorted(present.pos.tolist()) == [0, 1, 2, 3, 4, 5]  # type: ignore[union-attr]
    shifted = RowLayout.build(torch.tensor([3, 3, 3, 1]), 4)
    assert shifted.examples is not None and shifted.examples.tolist() == [1, 3]
    assert shifted.pos.tolist() == [3, 4, 5, 0]  # type: ignore[union-attr]
    assert RowLayout.build(torch.tensor([0, 0, 0, 0, 0, 0, 1, 2, 3]), 4).mode == "gather"


@pytest.mark.parametrize("attention", ["additive", "multiplicative"])
def test_attention_layouts_agree(attention: str) -> None:
    """Identity, grouped and gathered attention give the same step logits for the same rows."""
    model = make_model(attention=attention, bidirectional=True, input_feed=True)
    src, src_len = make_src(False, [5, 3, 2, 4])
    with torch.no_grad():
        enc = model.encode(src, src_len)
        base = model.init_state(enc)
        tokens = torch.tensor([4, 5, 6, 7])
        ref, _ = model.step(enc, base, tokens)
        modes = set()
        for rows in ([3, 1, 0, 2, 1, 3, 0, 2], [2, 2, 2, 2, 2, 2, 2, 0], [1], [0, 0, 0, 0, 0, 0, 1, 2, 3]):
            idx = torch.tensor(rows)
            logits, new = model.step(enc, base.index(idx), tokens[idx])
            torch.testing.assert_close(logits, ref[idx], atol=1e-5, rtol=1e-5)
            assert new.layout is not None
            modes.add((new.layout.mode, new.layout.examples is not None))
            if len(rows) > 1:  # the eval-mode fast step reads the same layout
                model.eval()
                fast, _ = model.step_cached(enc, base.index(idx), tokens[idx], model.token_gates())
                model.train()
                torch.testing.assert_close(fast, ref[idx], atol=1e-5, rtol=1e-5)
        assert modes == {("grouped", False), ("grouped", True), ("gather", False)}


# ---------------------------------------------------------------------------- padding, params, grads


@pytest.mark.parametrize(
    ("cell", "attention", "features", "input_feed"),
    [("gru", "additive", False, False), ("lstm", "multiplicative", True, True), ("gru", "none", True, False)],
)
def test_padded_batch_equals_singletons(cell: str, attention: str, features: bool, input_feed: bool) -> None:
    model = make_model(
        features, cell=cell, attention=attention, bidirectional=True, enc_layers=2, input_feed=input_feed
    )
    lens = [2, 6, 4]
    src, src_len = make_src(features, lens)
    dec = make_dec_input(3, 5)
    with torch.no_grad():
        batched = model(src, src_len, dec)
        for i, n in enumerate(lens):
            single = model(src[i : i + 1, :n], src_len[i : i + 1], dec[i : i + 1])
            torch.testing.assert_close(single[0], batched[i], atol=1e-5, rtol=1e-5)


def test_parameters_and_init() -> None:
    model = make_model(attention="additive", bidirectional=True)
    assert model.num_parameters() == sum(p.numel() for p in model.parameters())
    assert model.bridge_h is not None and torch.all(model.bridge_h.bias == 0)
    assert torch.all(model.tgt_embedding.weight[0] == 0)
    assert make_model().bridge_h is None  # same sizes: states copied


def test_backward_reaches_all_parameters() -> None:
    model = make_model(cell="lstm", attention="additive", bidirectional=True, dropout=0.2, dec_layers=2).train()
    src, src_len = make_src(False, [4, 3])
    dec = make_dec_input(2, 4)
    model(src, src_len, dec).logsumexp(-1).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert missing == []


def test_encoder_layers_bridge_to_deeper_decoder() -> None:
    model = make_model(cell="lstm", enc_layers=1, dec_layers=3)
    src, src_len = make_src(False, [3])
    with torch.no_grad():
        enc = model.encode(src, src_len)
        state = model.init_state(enc)
    assert state.h.shape == (3, 1, 6) and torch.equal(state.h[0], state.h[2])


# ---------------------------------------------------------------------------- shared first step
def assert_same_step(got: tuple, want: tuple) -> None:
    """Two ``(logits, DecoderState)`` step results agree up to float rounding."""
    (logits, new), (ref_logits, ref) = got, want
    torch.testing.assert_close(logits, ref_logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(new.h, ref.h, atol=1e-5, rtol=1e-5)
    for a, b in ((new.c, ref.c), (new.feed, ref.feed)):
        assert (a is None) == (b is None)
        if b is not None:
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert torch.equal(new.batch_idx, ref.batch_idx)
    assert (new.pos is None) == (ref.pos is None) and (new.pos is None or torch.equal(new.pos, ref.pos))


@pytest.mark.parametrize(
    ("cell", "attention", "input_feed", "aligned", "layers"),
    [("gru", "none", False, False, 1), ("gru", "additive", False, False, 2), ("lstm", "additive", True, False, 1),
     ("lstm", "multiplicative", False, True, 2), ("gru", "multiplicative", True, True, 1)],
)
def test_step_shared_equals_step_on_indexed_rows(cell: str, attention: str, input_feed: bool, aligned: bool,
                                                 layers: int) -> None:
    """Branching N rows from U shared states (the first roll-out step) equals indexing then stepping."""
    model = make_model(cell=cell, attention=attention, input_feed=input_feed, aligned_input=aligned,
                       dec_layers=layers, enc_layers=layers, bidirectional=True, dropout=0.3)
    src, src_len = make_src(False, [3, 5, 2])
    dec = make_dec_input(3, 4)
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        enc = model.encode(src, src_len)
        state = model.init_state(enc)
        for k in range(2):  # some history, so feed / pos / h differ per row
            _, state = model.step(enc, state, dec[:, k])
        rows = torch.randint(0, 3, (17,), generator=g)
        tokens = torch.randint(3, TGT_VOCAB, (17,), generator=g)
        logits, new = model.step_shared(enc, state, tokens, rows)
        ref_logits, ref = model.step(enc, state.index(rows), tokens)
        assert_same_step((logits, new), (ref_logits, ref))
        # the next step from the branched state agrees too
        nxt, _ = model.step(enc, new, tokens)
        nxt_ref, _ = model.step(enc, ref, tokens)
        torch.testing.assert_close(nxt, nxt_ref, atol=1e-5, rtol=1e-5)
    # in train mode (dropout) it falls back to index + step: same random stream, same numbers
    model.train()
    torch.manual_seed(3)
    a, _ = model.step_shared(enc, state, tokens, rows)
    torch.manual_seed(3)
    b, _ = model.step(enc, state.index(rows), tokens)
    assert torch.equal(a, b)


@pytest.mark.parametrize(
    ("cell", "attention", "input_feed", "aligned", "layers"),
    [("gru", "none", False, False, 1), ("gru", "additive", False, False, 2), ("lstm", "additive", True, False, 1),
     ("lstm", "multiplicative", False, True, 2), ("gru", "multiplicative", True, True, 1)],
)
def test_step_cached_equals_step(cell: str, attention: str, input_feed: bool, aligned: bool, layers: int) -> None:
    """Looking the token input projection up in ``token_gates`` equals the plain step, over several steps."""
    model = make_model(cell=cell, attention=attention, input_feed=input_feed, aligned_input=aligned,
                       dec_layers=layers, enc_layers=layers, bidirectional=True, dropout=0.3)
    src, src_len = make_src(False, [3, 5, 2])
    dec = make_dec_input(3, 4)
    with torch.no_grad():
        enc = model.encode(src, src_len)
        gates = model.token_gates()
        assert gates.shape == (TGT_VOCAB, (3 if cell == "gru" else 4) * model.cfg.hidden)
        state = ref = model.init_state(enc)
        rows = torch.tensor([2, 0, 1, 1, 0, 2])
        state, ref = state.index(rows), ref.index(rows)  # a general row layout, not the identity
        for k in range(dec.shape[1]):
            tokens = dec[rows, k]
            logits, state = model.step_cached(enc, state, tokens, gates)
            ref_logits, ref = model.step(enc, ref, tokens)
            assert_same_step((logits, state), (ref_logits, ref))
    # in train mode (dropout) it is the plain step: same random stream, same numbers
    model.train()
    torch.manual_seed(3)
    a, _ = model.step_cached(enc, state, tokens, gates)
    torch.manual_seed(3)
    b, _ = model.step(enc, state, tokens)
    assert torch.equal(a, b)


# ---------------------------------------------------------------------------- fast tanh
def test_fast_tanh_equals_torch_tanh_with_gradients() -> None:
    from searnn.models.functional import tanh, tanh_

    x = torch.cat([torch.linspace(-30, 30, 2001), torch.randn(1000) * 3, torch.tensor([0.0, -0.0, 1e-8])])
    torch.testing.assert_close(tanh(x), torch.tanh(x), atol=2e-7, rtol=0)
    torch.testing.assert_close(tanh_(x.clone()), torch.tanh(x), atol=2e-7, rtol=0)
    # out of place leaves its input alone; both are differentiable like torch.tanh
    w = torch.randn(len(x), generator=torch.Generator().manual_seed(0))
    a = x.clone().requires_grad_(True)
    y = tanh(a)
    assert torch.equal(a.detach(), x)
    (g,) = torch.autograd.grad((y * w).sum(), a)
    b = x.clone().requires_grad_(True)
    (g_ref,) = torch.autograd.grad((torch.tanh(b) * w).sum(), b)
    torch.testing.assert_close(g, g_ref, atol=1e-6, rtol=0)
    c = x.clone().requires_grad_(True)
    y_ = tanh_(c * 1.0)  # in place on a non-leaf whose producer needs no output (as in additive attention)
    (g_,) = torch.autograd.grad((y_ * w).sum(), c)
    torch.testing.assert_close(g_, g_ref, atol=1e-6, rtol=0)


def test_state_head_equals_index_of_the_first_rows() -> None:
    from searnn.models.state import DecoderState, RowLayout

    h = torch.randn(2, 6, 4)
    c = torch.randn(2, 6, 4)
    state = DecoderState(h=h, c=c, feed=torch.randn(6, 4), batch_idx=torch.tensor([0, 0, 1, 2, 2, 2]),
                         pos=torch.arange(6))
    grouped = state.get_layout(3)
    assert grouped.mode == "grouped"
    head, ref = state.head(4), state.index(torch.arange(4))
    for name in ("h", "c", "feed", "batch_idx", "pos"):
        assert torch.equal(getattr(head, name), getattr(ref, name))
    assert head.layout is not None and torch.equal(head.layout.pos, grouped.pos[:4])
    assert RowLayout.build(head.batch_idx, 3).mode in ("grouped", "gather")


def test_additive_attention_workspace_gives_the_autograd_path_values() -> None:
    """Without autograd the (G, M, S, A) sum goes into a reused workspace: same values as a fresh tensor,
    for shapes that shrink and grow between calls."""
    from searnn.models.attention import Attention

    torch.manual_seed(0)
    att = Attention("additive", 6, 5, 4)
    for g, m, s in ((3, 4, 5), (2, 2, 3), (4, 5, 6)):
        q, mem = torch.randn(g, m, 5), torch.randn(g, s, 6)
        mask = torch.rand(g, s) > 0.3
        mask[:, 0] = True
        with_grad = att(q, mem, att.keys(mem), mask)
        with torch.no_grad():
            without = att(q, mem, att.keys(mem), mask)
        assert torch.equal(with_grad.detach(), without)
    assert att._work is not None and att._work.numel() == 4 * 5 * 6 * 4
