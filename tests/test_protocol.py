"""The step protocol: searnn.testing.check_model on both architectures and on a user's own model, the
fallbacks of searnn.protocol against the fast paths, and decoding / roll-ins through a non-DecoderState state."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from searnn import protocol
from searnn.data.batch import Example, collate
from searnn.decoding import beam_search, greedy
from searnn.models import ModelConfig, Seq2Seq
from searnn.models.transformer import Transformer
from searnn.search.rollin import roll_in
from searnn.testing import check_model

V = 10


@dataclass
class RowState:
    """A user's state: h ``(N, H)`` and ``batch_idx (N,)``; no head / detach."""

    h: torch.Tensor
    batch_idx: torch.Tensor

    def __len__(self) -> int:
        return int(self.batch_idx.shape[0])

    def index(self, idx: torch.Tensor) -> RowState:
        return RowState(self.h.index_select(0, idx), self.batch_idx.index_select(0, idx))

    @classmethod
    def cat(cls, states: list[RowState]) -> RowState:
        return cls(torch.cat([s.h for s in states]), torch.cat([s.batch_idx for s in states]))


class UserModel(nn.Module):
    """A minimal protocol model: mean-pooled source, GRU-cell decoder; only encode / init_state / step."""

    def __init__(self, hidden: int = 8, broken_index: bool = False):
        super().__init__()
        self.tgt_vocab_size = V
        self.src = nn.Embedding(9, hidden)
        self.emb = nn.Embedding(V, hidden)
        self.cell = nn.GRUCell(2 * hidden, hidden)
        self.out = nn.Linear(hidden, V)
        self.broken_index = broken_index

    def encode(self, src: torch.Tensor, src_len: torch.Tensor) -> torch.Tensor:
        mask = torch.arange(src.shape[1])[None, :] < src_len[:, None]
        return (self.src(src[..., 0]) * mask[..., None]).sum(1) / src_len[:, None]

    def init_state(self, enc: torch.Tensor) -> RowState:
        return RowState(torch.tanh(enc), torch.arange(enc.shape[0]))

    def step(self, enc: torch.Tensor, state: RowState, tokens: torch.Tensor) -> tuple[torch.Tensor, RowState]:
        ctx = enc.index_select(0, state.batch_idx)
        h = self.cell(torch.cat([self.emb(tokens), ctx], -1), state.h)
        if self.broken_index:  # forgets which example a row belongs to
            return self.out(h), RowState(h, torch.arange(h.shape[0]) % enc.shape[0])
        return self.out(h), RowState(h, state.batch_idx)


def token_batch(b: int = 3):
    gen = torch.Generator().manual_seed(0)
    examples = []
    for i in range(b):
        n = 2 + i
        src = torch.randint(4, 9, (n,), generator=gen).tolist()
        examples.append(Example([[x] for x in src], torch.randint(4, V, (n,), generator=gen).tolist()))
    return collate(examples)


RNN_CONFIGS = [
    dict(),
    dict(attention="additive", bidirectional=True, cell="lstm", enc_layers=2, dec_layers=2),
    dict(attention="multiplicative", input_feed=True),
    dict(aligned_input=True),
]
TRANSFORMER_CONFIGS = [
    dict(),
    dict(enc_layers=2, dec_layers=2, tie_embeddings=True),
    dict(aligned_input=True, heads=4),
]


@pytest.mark.parametrize("opts", RNN_CONFIGS)
def test_rnn_passes_check_model(opts: dict) -> None:
    torch.manual_seed(0)
    model = Seq2Seq(ModelConfig(emb_dim=8, hidden=12, tgt_emb_dim=6, **opts), [9], None, V)
    assert check_model(model) == ["protocol", "teacher-forcing", "index-cat", "rollout"]


@pytest.mark.parametrize("opts", TRANSFORMER_CONFIGS)
def test_transformer_passes_check_model(opts: dict) -> None:
    torch.manual_seed(0)
    cfg = ModelConfig(arch="transformer", hidden=16, **{"heads": 2, "ffn_dim": 24, **opts})
    assert check_model(Transformer(cfg, [9], None, V)) == ["protocol", "teacher-forcing", "index-cat", "rollout"]


def test_transformer_with_feature_sources_passes_check_model() -> None:
    torch.manual_seed(0)
    model = Transformer(ModelConfig(arch="transformer", hidden=16, heads=2, ffn_dim=24), [], 7, V)
    check_model(model, torch.rand(3, 5, 7), torch.tensor([5, 3, 4]))


def test_user_model_passes_check_model_through_the_fallbacks() -> None:
    torch.manual_seed(0)
    model = UserModel()
    assert protocol.missing_methods(model) == []
    assert isinstance(model, protocol.StepModel)
    check_model(model)


def test_check_model_catches_a_broken_state() -> None:
    torch.manual_seed(0)
    with pytest.raises(AssertionError, match="batch_idx|difference"):
        check_model(UserModel(broken_index=True))


def test_check_model_names_missing_methods() -> None:
    with pytest.raises(AssertionError, match="no encode, init_state, step"):
        check_model(nn.Linear(2, 2))


def test_fallback_teacher_forcing_equals_the_fast_path() -> None:
    """The step-loop fallbacks of searnn.protocol give what Seq2Seq's fast teacher-forced paths give."""
    torch.manual_seed(0)
    model = Seq2Seq(ModelConfig(emb_dim=8, hidden=12, tgt_emb_dim=6, attention="additive"), [9], None, V).eval()
    batch = token_batch()
    enc = model.encode(batch.src, batch.src_len)
    fast_logits, fast_states = model.teacher_forced_states(enc, batch.decoder_input)
    loop_logits, loop_states = protocol.teacher_forced_loop(model, enc, batch.decoder_input, want_states=True)
    torch.testing.assert_close(loop_logits, fast_logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(loop_states.h, fast_states.h, atol=1e-5, rtol=1e-5)
    assert torch.equal(loop_states.batch_idx, fast_states.batch_idx)
    adapter = protocol.as_searnn_model(UserModel())
    assert isinstance(adapter, protocol.ProtocolAdapter)
    assert protocol.as_searnn_model(model) is model
    assert adapter(batch.src, batch.src_len, batch.decoder_input).shape == (*batch.tgt.shape, V)


def test_greedy_and_beam_decode_a_user_state() -> None:
    """greedy / beam_search on a state that is not a DecoderState (no head(): the fallback) equal a plain loop."""
    torch.manual_seed(0)
    model = UserModel().eval()
    batch = token_batch()
    enc = model.encode(batch.src, batch.src_len)
    max_len = torch.tensor([4, 2, 3])  # rows stop in order: greedy shrinks by head()
    with torch.no_grad():
        tokens, lengths = greedy(model, enc, model.init_state(enc), max_len, fixed_length=True)
        beam_tokens, beam_lengths = beam_search(model, enc, model.init_state(enc), 1, max_len, fixed_length=True)
        for b in range(3):
            state = model.init_state(enc).index(torch.tensor([b]))
            inp, seq = torch.tensor([1]), []
            for _ in range(int(max_len[b])):
                logits, state = model.step(enc, state, inp)
                logits[0, :3] = float("-inf")  # PAD, BOS, EOS blocked (fixed length)
                inp = logits.argmax(-1)
                seq.append(int(inp))
            assert tokens[b, : lengths[b]].tolist() == seq
            assert beam_tokens[b, : beam_lengths[b]].tolist() == seq


def test_learned_roll_in_of_a_user_model() -> None:
    """The learned roll-in concatenates per-step states with the state's own cat (not DecoderState.cat)."""
    torch.manual_seed(0)
    model = protocol.as_searnn_model(UserModel())
    batch = token_batch()
    rollin = roll_in(model, batch, "learned", 0.0, batch.tgt_len - 1, fixed_length=True)
    assert isinstance(rollin.states, RowState)
    assert len(rollin.states) == rollin.num_cells * batch.size


def test_wrapping_a_non_protocol_model_is_a_searnn_error() -> None:
    from searnn.errors import SearnnError

    with pytest.raises(SearnnError, match="Linear does not follow the step protocol: no encode, init_state, step"):
        protocol.as_searnn_model(nn.Linear(2, 2))
    model = UserModel()
    del model.tgt_vocab_size
    with pytest.raises(SearnnError, match="no integer tgt_vocab_size"):
        protocol.as_searnn_model(model)
    assert protocol.as_searnn_model(model, tgt_vocab_size=V).tgt_vocab_size == V
