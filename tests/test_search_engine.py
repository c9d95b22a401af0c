"""The batched search engine against a naive reference.

For every roll-out mode and every cost, the engine's cost tensor must equal what a plain per-candidate
loop computes: build the roll-in prefix, decode greedily one step at a time from scratch through
``model.step`` (one row, fresh encoding, feeding BOS, the prefix, the candidate), and score the single
output with a plain-Python cost (Hamming, Levenshtein, smoothed BLEU) or the cost module applied to that
one row (chunk F1; the oracles other than Hamming's, whose optimality tests/test_oracles.py checks by
brute force).
Models with token sources run in float64 so that argmax decisions cannot flip on rounding (the feature
encoder casts its input to float32, so the OCR-like case stays in float32).
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections import Counter

import numpy as np
import pytest
import torch

from searnn.costs import make_cost
from searnn.data.batch import Batch, Example, collate
from searnn.data.vocab import BOS_ID, EOS_ID, PAD_ID, Vocab
from searnn.models import ModelConfig, Seq2Seq
from searnn.search.engine import SearchOptions, search

LETTERS = Vocab(list("abcdef"))  # ids 4..9
WORDS = Vocab(["w1", "w2", "w3", "w4", "w5", "w6"])
TAGS = Vocab(["O", "B-NP", "I-NP", "B-VP", "I-VP"])

# cost -> (target vocab, fixed-length task, source kind, model options)
SETUPS = {
    "hamming": (LETTERS, True, "features", dict()),
    "edit": (WORDS, False, "tokens", dict(attention="additive")),
    "bleu": (WORDS, False, "tokens", dict(attention="multiplicative", input_feed=True)),
    "f1": (TAGS, True, "tokens", dict(cell="lstm", dec_layers=2, enc_layers=2, aligned_input=True)),
}
FEATS = 5
SRC_VOCAB = 9


def make_case(cost_name: str, batch_size: int = 4, seed: int = 0):
    vocab, fixed, src_kind, model_opts = SETUPS[cost_name]
    rng = random.Random(seed)
    examples = []
    for _ in range(batch_size):
        n_tgt = rng.randint(1, 5)
        n_src = n_tgt if fixed else rng.randint(1, 6)
        tgt = [rng.randrange(4, len(vocab)) for _ in range(n_tgt)]
        if src_kind == "features":
            src: list[list[int]] | np.ndarray = np.array(
                [[rng.gauss(0, 1) for _ in range(FEATS)] for _ in range(n_src)], dtype=np.float32
            )
        else:
            src = [[rng.randrange(4, SRC_VOCAB)] for _ in range(n_src)]
        examples.append(Example(src, tgt))
    batch = collate(examples)
    torch.manual_seed(seed)
    cfg = ModelConfig(emb_dim=8, hidden=12, tgt_emb_dim=6, **model_opts)
    model = Seq2Seq(
        cfg, [] if src_kind == "features" else [SRC_VOCAB], FEATS if src_kind == "features" else None, len(vocab)
    )
    if src_kind == "tokens":
        model = model.double()
    with torch.no_grad():  # make EOS a plausible greedy choice on variable-length tasks
        model.out.bias[EOS_ID] = 0.1
    return model, batch, make_cost(cost_name, vocab), fixed


# ----------------------------------------------------------------------------------- naive reference
def naive_cap(ref_len: int, fixed: bool) -> int:
    return ref_len if fixed else math.ceil(1.5 * ref_len) + 2


def one_row(batch: Batch, b: int) -> tuple[torch.Tensor, torch.Tensor]:
    n = int(batch.src_len[b])
    return batch.src[b : b + 1, :n], batch.src_len[b : b + 1]


def feed(model: Seq2Seq, enc, tokens: list[int]):
    """Feed BOS + tokens from the initial state; return the last logits (1, V) and the state."""
    state = model.init_state(enc)
    logits = None
    for tok in [BOS_ID, *tokens]:
        logits, state = model.step(enc, state, torch.tensor([tok]))
    return logits, state


def greedy_pick(logits: torch.Tensor, fixed: bool) -> int:
    scores = logits[0].clone()
    scores[PAD_ID] = scores[BOS_ID] = -math.inf
    if fixed:
        scores[EOS_ID] = -math.inf
    return int(scores.argmax())


def naive_continue(model: Seq2Seq, enc, tokens: list[int], cap: int, fixed: bool) -> list[int]:
    """tokens, then greedy decoding (from scratch) until EOS or cap tokens."""
    logits, state = feed(model, enc, tokens)
    seq = list(tokens)
    while len(seq) < cap:
        nxt = greedy_pick(logits, fixed)
        if nxt == EOS_ID:
            break
        seq.append(nxt)
        logits, state = model.step(enc, state, torch.tensor([nxt]))
    return seq


def levenshtein(a: list[int], b: list[int]) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


def smoothed_bleu(hyp: list[int], ref: list[int], order: int = 4) -> float:
    """Smoothed sentence BLEU-4 (docs/METHODS.md §4.3): p_n = (m_n + 1) / (h_n + 1), 0 without unigram match,
    brevity penalty exp(1 - r/c) when c < r, 0 for an empty hypothesis."""
    if not hyp:
        return 0.0
    log_p = 0.0
    for n in range(1, order + 1):
        h = Counter(tuple(hyp[i : i + n]) for i in range(len(hyp) - n + 1))
        r = Counter(tuple(ref[i : i + n]) for i in range(len(ref) - n + 1))
        m = sum(min(c, r[g]) for g, c in h.items())
        if n == 1 and m == 0:
            return 0.0
        log_p += math.log((m + 1) / (sum(h.values()) + 1)) / order
    bp = math.exp(1 - len(ref) / len(hyp)) if len(hyp) < len(ref) else 1.0
    return bp * math.exp(log_p)


_CACHE: dict[tuple, object] = {}


def cached(fn):
    def wrapper(name, cost, *args):
        key = (fn.__name__, name, *(tuple(a) if isinstance(a, list) else a for a in args))
        if key not in _CACHE:
            _CACHE[key] = fn(name, cost, *args)
        return _CACHE[key]

    return wrapper


@cached
def plain_cost(name: str, cost, hyp: list[int], ref: list[int]) -> float:
    if name == "hamming":
        errors = sum(h != r for h, r in zip(hyp, ref, strict=False)) + abs(len(hyp) - len(ref))
        return errors / max(len(ref), 1)
    if name == "edit":
        return levenshtein(hyp, ref) / max(len(ref), 1)
    if name == "bleu":
        return 1.0 - smoothed_bleu(hyp, ref)
    h = torch.tensor([hyp + [PAD_ID]])  # cost module on one row (one spare column for empty hyps)
    r = torch.tensor([ref + [PAD_ID]])
    return float(cost(h, torch.tensor([len(hyp)]), r, torch.tensor([len(ref)]))[0])


@cached
def plain_oracle(name: str, cost, prefix: list[int], ref: list[int], max_len: int) -> list[int]:
    if name == "hamming":
        return prefix + ref[len(prefix) : max(max_len, len(prefix))]
    seq, seq_len = cost.complete(
        torch.tensor([prefix + [PAD_ID]]), torch.tensor([len(prefix)]),
        torch.tensor([ref + [PAD_ID]]), torch.tensor([len(ref)]), max_len,
    )
    return seq[0, : int(seq_len[0])].tolist()


# ----------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("cost_name", list(SETUPS))
@pytest.mark.parametrize(
    "rollin,rollout",
    [("learned", "reference"), ("learned", "learned"), ("mixed-cell", "mixed"), ("reference", "learned")],
)
def test_engine_equals_naive_reference(cost_name: str, rollin: str, rollout: str) -> None:
    model, batch, cost, fixed = make_case(cost_name)
    model.train()  # dropout is 0: train mode must not matter, roll-outs switch to eval themselves
    torch.manual_seed(123)
    opts = SearchOptions(rollin=rollin, rollout=rollout, rollin_ref_prob=0.5, rollout_ref_prob=0.5, mix_per="rollout")
    res = search(model, batch, cost, fixed, opts)
    assert model.training
    assert res.costs.grad_fn is None and not res.costs.requires_grad

    bsz, t_cells, v = res.costs.shape
    learned = {
        (int(b), int(t), int(a)): bool(flag)
        for b, t, a, flag in zip(
            res.candidates.b, res.candidates.t, res.candidates.a, res.candidates.learned, strict=True
        )
    }
    if rollout == "learned":
        assert all(learned.values())
    if rollout == "reference":
        assert not any(learned.values())
    if rollout == "mixed":
        assert any(learned.values()) and not all(learned.values())
    if rollin == "learned" and rollout == "learned":
        assert res.completions.num_reused > 0  # the roll-in's own continuations are copied, and checked below

    caps = [naive_cap(int(batch.tgt_len[b]) - 1, fixed) for b in range(bsz)]
    max_cap = max(caps)
    with torch.no_grad():
        model.eval()
        for b in range(bsz):
            enc = model.encode(*one_row(batch, b))
            ref = batch.tgt[b, : int(batch.tgt_len[b]) - 1].tolist()
            cells = int(res.rollin.cells[b])
            rin = res.rollin.tokens[b, :cells].tolist()
            assert rin[-1] == EOS_ID and EOS_ID not in rin[:-1]
            if rollin == "learned":
                assert rin[:-1] == naive_continue(model, enc, [], caps[b], fixed)
            if rollin == "reference" or fixed:
                assert cells == int(batch.tgt_len[b])
            assert cells <= caps[b] + 1
            for t in range(t_cells):
                if t >= cells:
                    assert torch.isinf(res.costs[b, t]).all()
                    continue
                prefix = rin[:t]
                logits, _ = feed(model, enc, prefix)
                torch.testing.assert_close(res.rollin.logits[b, t].detach(), logits[0], atol=1e-5, rtol=1e-5)
                for a in range(v):
                    if a == EOS_ID:
                        seq = prefix
                    elif t + 1 >= caps[b]:
                        seq = prefix + [a]
                    elif learned[(b, t, a)]:
                        seq = naive_continue(model, enc, prefix + [a], caps[b], fixed)
                    else:
                        seq = plain_oracle(cost_name, cost, prefix + [a], ref, max_cap)
                    expected = plain_cost(cost_name, cost, seq, ref)
                    got = float(res.costs[b, t, a])
                    assert got == pytest.approx(expected, abs=1e-6), (b, t, a, seq, ref)
            expected_rollin = plain_cost(cost_name, cost, rin[:-1], ref)
            assert float(res.rollin_cost[b]) == pytest.approx(expected_rollin, abs=1e-6)


def test_mixed_per_sequence_draws_one_policy_per_example() -> None:
    model, batch, cost, fixed = make_case("edit", batch_size=6)
    torch.manual_seed(5)
    res = search(model, batch, cost, fixed, SearchOptions(rollout="mixed", mix_per="sequence"))
    for b in range(batch.size):
        flags = res.candidates.learned[res.candidates.b == b]
        assert flags.all() or not flags.any()


def test_chunking_does_not_change_costs() -> None:
    model, batch, cost, fixed = make_case("edit", batch_size=5, seed=3)
    opts = SearchOptions(rollin="learned", rollout="learned")
    full = search(model, batch, cost, fixed, opts)
    small = search(model, batch, cost, fixed, dataclasses.replace(opts, rollout_batch_size=7))
    assert torch.equal(full.costs, small.costs)
    assert full.completions.decoder_steps == small.completions.decoder_steps
