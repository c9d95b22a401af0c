"""Tests of greedy and beam decoding: shrinking vs naive loops, beam vs brute force, fixed length."""

from __future__ import annotations

import itertools

import pytest
import torch

from searnn.data.batch import Example, collate
from searnn.data.vocab import BOS_ID, EOS_ID, PAD_ID
from searnn.decoding import (
    beam_search,
    blocked_bias,
    decode_batch,
    decode_batch_tensors,
    default_max_len,
    greedy,
    length_penalty,
)
from searnn.errors import ConfigError
from searnn.models import ModelConfig, Seq2Seq

SRC_VOCAB = 12


class TriggerSeq2Seq(Seq2Seq):
    """Random models decode nearly source-independent token cycles; to make rows end at different steps,
    EOS gets a large bonus right after the token ``4 + src_len % (V - 4)`` of the row's example is fed
    (a function of the example and the path only, so batched and one-by-one decoding must agree)."""

    @staticmethod
    def _trigger(enc, tokens, logits, new):  # type: ignore[no-untyped-def]
        trigger = 4 + enc.src_len[new.batch_idx] % (logits.shape[1] - 4)
        logits = logits.clone()
        logits[:, EOS_ID] += 100.0 * (tokens == trigger).float()
        return logits, new

    # every decoder step of the model gets the trigger: the plain one and the eval-mode fast paths
    def step(self, enc, state, tokens):  # type: ignore[no-untyped-def]
        return self._trigger(enc, tokens, *super().step(enc, state, tokens))

    def step_cached(self, enc, state, tokens, gates):  # type: ignore[no-untyped-def]
        return self._trigger(enc, tokens, *super().step_cached(enc, state, tokens, gates))

    def step_shared(self, enc, state, tokens, rows):  # type: ignore[no-untyped-def]
        return self._trigger(enc, tokens, *super().step_shared(enc, state, tokens, rows))


def make_model(
    tgt_vocab: int = 9, eos_bias: float = 0.0, seed: int = 0, trigger: bool = False, **kwargs: object
) -> Seq2Seq:
    torch.manual_seed(seed)
    defaults: dict[str, object] = dict(emb_dim=8, hidden=8, tgt_emb_dim=6)
    defaults.update(kwargs)
    cls = TriggerSeq2Seq if trigger else Seq2Seq
    model = cls(ModelConfig(**defaults), [SRC_VOCAB], None, tgt_vocab)  # type: ignore[arg-type]
    with torch.no_grad():
        model.out.bias[EOS_ID] += eos_bias
        model.out.weight.mul_(3.0)  # peakier distributions
    return model.eval()


def make_src(lens: list[int], seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(4, SRC_VOCAB, (len(lens), max(lens), 1), generator=g)
    for i, n in enumerate(lens):
        src[i, n:] = PAD_ID
    return src, torch.tensor(lens)


def naive_greedy(
    model: Seq2Seq, src: torch.Tensor, src_len: torch.Tensor, max_len: list[int], fixed: bool
) -> list[list[int]]:
    """One example at a time, one step at a time, no shrinking."""
    outs = []
    bias = blocked_bias(model.tgt_vocab_size, fixed, torch.device("cpu"))
    with torch.no_grad():
        for i in range(src.shape[0]):
            n = int(src_len[i])
            enc = model.encode(src[i : i + 1, :n], src_len[i : i + 1])
            state = model.init_state(enc)
            tok = torch.tensor([BOS_ID])
            out: list[int] = []
            for _ in range(max_len[i]):
                logits, state = model.step(enc, state, tok)
                tok = (logits + bias).argmax(-1)
                if int(tok) == EOS_ID:
                    break
                out.append(int(tok))
            outs.append(out)
    return outs


def as_lists(tokens: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]:
    return [row[:n] for row, n in zip(tokens.tolist(), lengths.tolist(), strict=True)]


CONFIGS = [
    dict(),
    dict(cell="lstm", attention="additive", bidirectional=True),
    dict(attention="multiplicative", input_feed=True, dec_layers=2),
]


@pytest.mark.parametrize("cfg", CONFIGS)
def test_greedy_shrinking_matches_naive_loop(cfg: dict) -> None:
    model = make_model(trigger=True, **cfg)
    lens = [3, 7, 1, 5, 4, 6, 2, 8]
    src, src_len = make_src(lens)
    max_len = [4, 9, 2, 0, 6, 8, 9, 9]
    with torch.no_grad():
        enc = model.encode(src, src_len)
        tokens, lengths = greedy(model, enc, model.init_state(enc), torch.tensor(max_len), fixed_length=False)
    assert tokens.shape == (8, 9)
    got = as_lists(tokens, lengths)
    assert got == naive_greedy(model, src, src_len, max_len, fixed=False)
    early = {len(x) for x, m in zip(got, max_len, strict=True) if len(x) < m}
    assert len(early) >= 2  # rows really ended by EOS at different steps
    for row, n in zip(tokens.tolist(), lengths.tolist(), strict=True):
        assert all(t == PAD_ID for t in row[n:])
        assert all(t not in (PAD_ID, BOS_ID, EOS_ID) for t in row[:n])


@pytest.mark.parametrize("cfg", CONFIGS)
def test_fixed_length_emits_exactly_src_len(cfg: dict) -> None:
    model = make_model(eos_bias=5.0, **cfg)  # EOS would win everywhere if it were allowed
    lens = [3, 7, 1, 5]
    src, src_len = make_src(lens)
    with torch.no_grad():
        enc = model.encode(src, src_len)
        tokens, lengths = greedy(model, enc, model.init_state(enc), src_len, fixed_length=True)
        beam_tokens, beam_lengths = beam_search(model, enc, model.init_state(enc), 3, src_len, fixed_length=True)
    assert lengths.tolist() == lens and beam_lengths.tolist() == lens
    for toks in (tokens, beam_tokens):
        assert not bool((toks == EOS_ID).any())
        for row, n in zip(toks.tolist(), lens, strict=True):
            assert all(t >= 3 for t in row[:n]) and all(t == PAD_ID for t in row[n:])
    assert as_lists(tokens, lengths) == naive_greedy(model, src, src_len, lens, fixed=True)


@pytest.mark.parametrize("cfg", CONFIGS)
@pytest.mark.parametrize("fixed", [False, True])
def test_beam_one_equals_greedy(cfg: dict, fixed: bool) -> None:
    model = make_model(trigger=True, **cfg)
    src, src_len = make_src([3, 7, 1, 5, 2, 6, 8])
    max_len = src_len if fixed else torch.tensor([5, 9, 3, 6, 1, 9, 9])
    with torch.no_grad():
        enc = model.encode(src, src_len)
        g = greedy(model, enc, model.init_state(enc), max_len, fixed)
        b = beam_search(model, enc, model.init_state(enc), 1, max_len, fixed, len_norm=0.7)
    assert torch.equal(g[0], b[0]) and torch.equal(g[1], b[1])


def brute_force_best(
    model: Seq2Seq, src: torch.Tensor, src_len: torch.Tensor, max_len: int, fixed: bool
) -> tuple[list[int], float]:
    """Enumerate every output (tokens from the allowed set, EOS-terminated unless it has max_len tokens)
    and score it with the sum of log-probabilities (EOS included when emitted)."""
    v = model.tgt_vocab_size
    bias = blocked_bias(v, fixed, torch.device("cpu"))
    allowed = [a for a in range(v) if a not in (PAD_ID, BOS_ID, EOS_ID)]
    lengths = [max_len] if fixed else range(max_len + 1)
    best: tuple[list[int], float] = ([], float("-inf"))
    with torch.no_grad():
        enc = model.encode(src, src_len)
        for n in lengths:
            for seq in itertools.product(allowed, repeat=n):
                targets = list(seq) + ([] if n == max_len else [EOS_ID])
                dec = torch.tensor([[BOS_ID, *targets[:-1]]]) if targets else None
                if dec is None:
                    continue
                logp = torch.log_softmax(model.teacher_forced(enc, dec)[0] + bias, -1)
                score = float(logp[torch.arange(len(targets)), torch.tensor(targets)].sum())
                if score > best[1]:
                    best = (list(seq), score)
    return best


@pytest.mark.parametrize("fixed", [False, True])
def test_wide_beam_finds_brute_force_optimum(fixed: bool) -> None:
    """alpha = 0, 3 emittable tokens (UNK and two words), up to 3 tokens: a beam of 16 keeps every
    prefix, so it must return the exact argmax; greedy is suboptimal on some of these examples."""
    lens = [3, 2, 3]
    greedy_misses = 0
    for seed in range(4):
        torch.manual_seed(seed)
        cfg = ModelConfig(emb_dim=8, hidden=8, tgt_emb_dim=6, attention="additive")
        model = Seq2Seq(cfg, [SRC_VOCAB], None, 7).eval()
        with torch.no_grad():
            model.out.bias[EOS_ID] -= 0.0 if fixed else 2.0  # outputs of every length compete
        src, src_len = make_src(lens, seed=seed + 10)
        with torch.no_grad():
            enc = model.encode(src, src_len)
            tokens, lengths = beam_search(model, enc, model.init_state(enc), 16, src_len, fixed, len_norm=0.0)
            greedy_out = as_lists(*greedy(model, enc, model.init_state(enc), src_len, fixed))
        for i, n in enumerate(lens):
            best, _ = brute_force_best(model, src[i : i + 1, :n], src_len[i : i + 1], n, fixed)
            assert tokens[i, : lengths[i]].tolist() == best
            greedy_misses += greedy_out[i] != best
    assert greedy_misses > 0


def test_beam_does_at_least_as_well_as_greedy() -> None:
    model = make_model(tgt_vocab=7, eos_bias=1.0, attention="multiplicative")
    src, src_len = make_src([4, 5, 2, 3])
    max_len = torch.tensor([5, 5, 5, 5])
    bias = blocked_bias(7, False, torch.device("cpu"))

    def score(enc_i: object, seq: list[int], limit: int) -> float:
        targets = seq + ([] if len(seq) == limit else [EOS_ID])
        dec = torch.tensor([[BOS_ID, *targets[:-1]]])
        logp = torch.log_softmax(model.teacher_forced(enc_i, dec)[0] + bias, -1)  # type: ignore[arg-type]
        return float(logp[torch.arange(len(targets)), torch.tensor(targets)].sum())

    with torch.no_grad():
        enc = model.encode(src, src_len)
        g = as_lists(*greedy(model, enc, model.init_state(enc), max_len, False))
        b = as_lists(*beam_search(model, enc, model.init_state(enc), 4, max_len, False))
        for i in range(4):
            enc_i = model.encode(src[i : i + 1, : int(src_len[i])], src_len[i : i + 1])
            assert score(enc_i, b[i], 5) >= score(enc_i, g[i], 5) - 1e-5


def test_greedy_from_rollin_states_with_first_tokens() -> None:
    """Roll-out use: start from teacher-forced states with a forced first token."""
    model = make_model(eos_bias=1.0, attention="additive", input_feed=True)
    src, src_len = make_src([4, 3])
    dec = torch.tensor([[BOS_ID, 5, 6, 7], [BOS_ID, 4, 4, 8]])
    with torch.no_grad():
        enc = model.encode(src, src_len)
        _, states = model.teacher_forced_states(enc, dec)
        # rows 2*B + b: state after consuming dec[:, :2] (BOS, y_0); feeding a candidate for output
        # position 1 (instead of dec[:, 2]) then decodes positions 2, 3, ... greedily
        start = states.index(torch.tensor([4, 5, 4]))
        first = torch.tensor([8, 8, 4])
        tokens, lengths = greedy(model, enc, start, torch.tensor([5, 5, 3]), False, first_tokens=first)
        for n in range(3):
            b = n % 2
            state = states.index(torch.tensor([4 + b]))
            tok = first[n : n + 1]
            expected: list[int] = []
            bias = blocked_bias(model.tgt_vocab_size, False, torch.device("cpu"))
            for _ in range([5, 5, 3][n]):
                logits, state = model.step(enc, state, tok)
                tok = (logits + bias).argmax(-1)
                if int(tok) == EOS_ID:
                    break
                expected.append(int(tok))
            assert tokens[n, : lengths[n]].tolist() == expected


def test_length_penalty() -> None:
    ln = torch.tensor([0, 1, 7])
    torch.testing.assert_close(length_penalty(ln, 0.0), torch.ones(3))
    torch.testing.assert_close(length_penalty(ln, 1.0), torch.tensor([5 / 6, 1.0, 2.0]))
    torch.testing.assert_close(length_penalty(ln, 1.0, "length"), torch.tensor([1.0, 1.0, 7.0]))
    with pytest.raises(ConfigError, match="gnmt"):
        length_penalty(ln, 1.0, "bogus")


def test_decode_batch_helpers() -> None:
    model = make_model(eos_bias=1.0, attention="additive")
    examples = [Example(src=[[5], [6], [7]], tgt=[4, 5]), Example(src=[[8]], tgt=[6]), Example(src=[[4]] * 6, tgt=[4])]
    batch = collate(examples)
    assert default_max_len(batch.src_len, False).tolist() == [16, 12, 22]
    assert default_max_len(batch.src_len, False, max_len=13).tolist() == [13, 12, 13]
    assert default_max_len(batch.src_len, True, max_len=2).tolist() == [3, 1, 6]
    fixed = decode_batch(model, batch, fixed_length=True)
    assert [len(x) for x in fixed] == [3, 1, 6]
    out = decode_batch(model, batch, fixed_length=False, max_len=4)
    assert all(len(x) <= 4 for x in out) and all(EOS_ID not in x for x in out)
    tokens, lengths = decode_batch_tensors(model, batch, fixed_length=False, max_len=4)
    assert as_lists(tokens, lengths) == out
    beam = decode_batch(model, batch, fixed_length=False, beam=3, max_len=4)
    assert len(beam) == 3 and all(len(x) <= 4 for x in beam)
    assert decode_batch(model, batch, fixed_length=False, beam=1, max_len=4) == out


@pytest.mark.parametrize("fixed", [False, True])
def test_greedy_from_shared_states_equals_indexed_states(fixed: bool) -> None:
    """``state_rows``: rows branching from shared states decode as if each had its own copy."""
    model = make_model(eos_bias=1.0, attention="additive")
    src, src_len = make_src([4, 3])
    dec = torch.tensor([[BOS_ID, 5, 6, 7], [BOS_ID, 4, 4, 8]])
    with torch.no_grad():
        enc = model.encode(src, src_len)
        _, states = model.teacher_forced_states(enc, dec)
        shared = states.index(torch.tensor([2, 5, 7]))
        rows = torch.tensor([0, 0, 1, 2, 2, 2, 1])
        first = torch.tensor([4, 8, 5, 6, 7, 4, 4])
        budget = torch.tensor([3, 0, 4, 2, 5, 1, 3])  # a zero budget exercises the initial filtering
        got = greedy(model, enc, shared, budget, fixed, first_tokens=first, state_rows=rows)
        want = greedy(model, enc, shared.index(rows), budget, fixed, first_tokens=first)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


@pytest.mark.parametrize("cfg", CONFIGS)
def test_greedy_sorted_fixed_length_rows_shrink_by_slicing_and_match_naive(cfg: dict) -> None:
    """Rows sorted by length, no EOS: finished rows are the last ones and leave by slicing (the views of
    DecoderState.head); the output equals the naive loop."""
    model = make_model(eos_bias=5.0, **cfg)
    lens = [8, 7, 7, 5, 4, 4, 2, 1]
    src, src_len = make_src(lens)
    with torch.no_grad():
        enc = model.encode(src, src_len)
        eval_model = model.eval()
        tokens, lengths = greedy(eval_model, enc, model.init_state(enc), src_len, fixed_length=True,
                                 gates=model.token_gates())
    assert lengths.tolist() == lens
    assert as_lists(tokens, lengths) == naive_greedy(model, src, src_len, lens, fixed=True)
