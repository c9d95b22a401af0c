"""Shortlisted roll-outs, the roll-out horizon and dropped special tokens (issue 10)."""

from __future__ import annotations

import dataclasses
import random
import subprocess
import sys
from collections import Counter

import pytest
import torch

from searnn.costs import make_cost
from searnn.data.batch import Example, collate
from searnn.data.task import TaskData
from searnn.data.vocab import BOS_ID, EOS_ID, PAD_ID, Vocab
from searnn.decoding.greedy import Scorer, greedy
from searnn.errors import ConfigError
from searnn.models import ModelConfig, Seq2Seq
from searnn.objectives.searnn import SearnnConfig, SearnnObjective
from searnn.search.engine import SearchOptions, output_cap, search
from searnn.search.shortlist import build_shortlist, frequent_tokens

WORDS = Vocab([f"w{i}" for i in range(36)])  # ids 4..39, V = 40
SRC_VOCAB = 11


def make_examples(n: int, seed: int) -> list[Example]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        tgt = [min(4 + int(rng.expovariate(0.25)), len(WORDS) - 1) for _ in range(rng.randint(1, 6))]
        out.append(Example([[rng.randrange(4, SRC_VOCAB)] for _ in range(rng.randint(1, 6))], tgt))
    return out


def make_case(seed: int = 0, batch_size: int = 5):
    batch = collate(make_examples(batch_size, seed))
    torch.manual_seed(seed)
    model = Seq2Seq(
        ModelConfig(emb_dim=8, hidden=12, tgt_emb_dim=6, attention="additive"), [SRC_VOCAB], None, len(WORDS)
    ).double()
    with torch.no_grad():
        model.out.bias[EOS_ID] = 0.3  # EOS a plausible greedy choice
    return model, batch, make_cost("bleu", WORDS)


def make_task(examples: list[Example]) -> TaskData:
    return TaskData(
        name="toy", train=examples, valid=[], test=[], tgt_vocab=WORDS, src_vocabs=[Vocab([])], src_feature_dim=None,
        fixed_length=False, metric="bleu", cost="bleu", lower_is_better=False,
        parse_source=lambda line: [[0]], format_output=lambda ids: "",
    )


# ---------------------------------------------------------------------------------- the shortlist itself
def test_frequent_tokens_match_a_counter() -> None:
    examples = make_examples(40, seed=1)
    counts = Counter(tok for ex in examples for tok in ex.tgt)
    got = frequent_tokens(examples, len(WORDS), 5).tolist()
    assert len(got) == 5
    # the 5 most frequent (ties by lower id first)
    expected = sorted(range(len(WORDS)), key=lambda v: (-counts.get(v, 0), v))[:5]
    assert got == expected
    assert len(frequent_tokens(examples, len(WORDS), 1000)) == len(WORDS)


def test_shortlist_is_the_union_of_its_parts() -> None:
    ref = torch.tensor([[5, 6, EOS_ID, PAD_ID], [7, 7, 8, EOS_ID]])
    cand = torch.tensor([9, 5, 30])
    frequent = torch.tensor([4, 11])
    got = build_shortlist(ref, cand, frequent, len(WORDS)).tolist()
    assert got == sorted({5, 6, 7, 8, EOS_ID} | {9, 30} | {4, 11})


# ---------------------------------------------------------------------------------- greedy with a shortlist
def naive_shortlist_greedy(model, enc, state, n, cap, vocab: list[int]) -> list[list[int]]:
    """One row at a time, plain steps, argmax over ``vocab`` (PAD and BOS excluded)."""
    allowed = [v for v in vocab if v not in (PAD_ID, BOS_ID)]
    out = []
    for i in range(n):
        st, tok, seq = state.index(torch.tensor([i])), torch.tensor([BOS_ID]), []
        for _ in range(cap):
            logits, st = model.step(enc, st, tok)
            best = allowed[int(logits[0, allowed].argmax())]
            if best == EOS_ID:
                break
            seq.append(best)
            tok = torch.tensor([best])
        out.append(seq)
    return out


@pytest.mark.parametrize("gates", [False, True])
def test_shortlist_greedy_equals_naive_argmax_over_the_shortlist(gates: bool) -> None:
    model, batch, _ = make_case(seed=2)
    model.eval()
    enc = model.encode(batch.src, batch.src_len)
    state = model.init_state(enc)
    vocab = torch.tensor([EOS_ID, 4, 5, 6, 9, 17, 23])
    stats: dict[str, float] = {}
    scorer = Scorer(model, False, torch.device("cpu"), vocab=vocab, stats=stats)
    cap = 7
    tokens, lengths = greedy(
        model, enc, state, torch.full((batch.size,), cap), False, scorer=scorer,
        gates=model.token_gates() if gates else None,
    )
    expected = naive_shortlist_greedy(model, enc, state, batch.size, cap, vocab.tolist())
    got = [tokens[i, : int(lengths[i])].tolist() for i in range(batch.size)]
    assert got == expected
    assert stats["shortlist_checked"] > 0 and 0 <= stats["shortlist_agree"] <= stats["shortlist_checked"]


def test_shortlist_agreement_counts_equal_a_brute_force_check() -> None:
    model, _, _ = make_case(seed=3)
    o = torch.randn(40, 12, dtype=torch.float64)
    vocab = torch.tensor([EOS_ID, 4, 8, 12, 16])
    stats: dict[str, float] = {}
    scorer = Scorer(model, False, torch.device("cpu"), vocab=vocab, stats=stats, check_rows=40)
    best = scorer.best(o)
    full = model.out(o)
    full[:, [PAD_ID, BOS_ID]] = float("-inf")
    assert torch.equal(best, full[:, vocab].argmax(dim=-1))
    agree = sum(int(vocab[int(full[i, vocab].argmax())]) == int(full[i].argmax()) for i in range(40))
    assert stats == {"shortlist_checked": 40.0, "shortlist_agree": float(agree)}


def test_a_shortlist_of_every_emittable_token_is_the_full_vocabulary() -> None:
    model, _, _ = make_case()
    everything = torch.arange(len(WORDS))
    assert Scorer(model, False, torch.device("cpu"), vocab=everything).vocab is None
    assert Scorer(model, False, torch.device("cpu"), vocab=everything[2:]).vocab is None  # PAD, BOS blocked
    assert Scorer(model, False, torch.device("cpu"), vocab=everything[3:]).vocab is not None


# ---------------------------------------------------------------------------------- the search
OPTS = SearchOptions(rollin="learned", rollout="learned", sample_tokens="topk", num_tokens=4, gt_neighbors=1)


def test_shortlist_with_k_at_least_v_equals_full_exactly() -> None:
    model, batch, cost = make_case(seed=4)
    frequent = frequent_tokens(make_examples(30, 9), len(WORDS), len(WORDS))
    full = search(model, batch, cost, False, OPTS)
    short = search(model, batch, cost, False, dataclasses.replace(OPTS, rollout_vocab="shortlist"), frequent=frequent)
    assert torch.equal(full.costs, short.costs)
    assert torch.equal(full.completions.seq, short.completions.seq)
    assert short.stats["shortlist_size"] == len(WORDS) and short.stats["shortlist_agree"] == 1.0


def test_small_shortlist_restricts_the_rollouts_and_logs_agreement() -> None:
    model, batch, cost = make_case(seed=5)
    opts = dataclasses.replace(OPTS, rollout_vocab="shortlist")
    res = search(model, batch, cost, False, opts, frequent=torch.tensor([4]))
    allowed = set(build_shortlist(batch.tgt, res.candidates.a, torch.tensor([4]), len(WORDS)).tolist())
    assert res.stats["shortlist_size"] == len(allowed - {BOS_ID})
    # every decoded token lies in the shortlist
    learned = res.completions.seq[res.candidates.learned]
    assert set(learned[learned != PAD_ID].tolist()) <= allowed | set(batch.tgt.reshape(-1).tolist())
    assert 0.0 <= res.stats["shortlist_agree"] <= 1.0 and res.stats["shortlist_checked"] > 0


def test_objective_logs_shortlist_agreement() -> None:
    examples = make_examples(20, seed=6)
    task = make_task(examples)
    model, batch, _ = make_case(seed=6)
    objective = SearnnObjective(SearnnConfig(rollout_vocab="shortlist", shortlist_size=3, **{
        "rollin": "learned", "rollout": "learned", "sample_tokens": "topk", "num_tokens": 3}), task)
    out = objective(model, batch)
    assert 0.0 <= out.logs["shortlist_agree"] <= 1.0
    assert "shortlist_size" in out.logs
    assert "shortlist_agree" not in SearnnObjective(SearnnConfig(), task)(model, batch).logs


# ---------------------------------------------------------------------------------- horizon
def test_horizon_zero_and_beyond_the_cap_equal_decoding_to_the_end() -> None:
    model, batch, cost = make_case(seed=7)
    full = search(model, batch, cost, False, OPTS)
    assert OPTS.rollout_horizon == 0
    long = search(model, batch, cost, False, dataclasses.replace(OPTS, rollout_horizon=100))
    assert torch.equal(full.costs, long.costs)
    assert long.stats["rollouts_cut"] == 0


def test_horizon_one_decodes_one_token_then_the_oracle_completes() -> None:
    model, batch, cost = make_case(seed=8, batch_size=6)
    full = search(model, batch, cost, False, OPTS)
    cut = search(model, batch, cost, False, dataclasses.replace(OPTS, rollout_horizon=1))
    cand, ref_len = full.candidates, batch.tgt_len - 1
    cap = output_cap(ref_len, False, OPTS.max_len_ratio, OPTS.max_len_extra)
    width = cut.completions.seq.shape[1] - 1
    n_cut = 0
    for i in range(len(cand)):
        b, t, a = int(cand.b[i]), int(cand.t[i]), int(cand.a[i])
        seq_full = full.completions.seq[i, : int(full.completions.seq_len[i])].tolist()
        seq_cut = cut.completions.seq[i, : int(cut.completions.seq_len[i])].tolist()
        budget = int(cap[b]) - (t + 1)
        if a == EOS_ID or budget <= 1 or len(seq_full) == t + 1:  # nothing decoded past the horizon
            assert seq_cut == seq_full
            continue
        n_cut += 1
        keep = seq_full[: t + 2]  # prefix, candidate, the first decoded token
        done, done_len = cost.complete(
            torch.tensor([keep]), torch.tensor([len(keep)]), batch.tgt[b : b + 1], ref_len[b : b + 1], width
        )
        assert seq_cut == done[0, : int(done_len[0])].tolist(), (i, seq_full, seq_cut)
    assert n_cut > 0 and cut.stats["rollouts_cut"] == n_cut


# ---------------------------------------------------------------------------------- special tokens
def test_dropping_special_tokens_keeps_every_other_cost() -> None:
    model, batch, cost = make_case(seed=9)
    opts = SearchOptions(rollin="learned", rollout="learned", sample_tokens="all")
    kept = search(model, batch, cost, False, opts)
    dropped = search(model, batch, cost, False, dataclasses.replace(opts, special_tokens="drop"))
    assert torch.isinf(dropped.costs[:, :, [PAD_ID, BOS_ID]]).all()
    assert torch.isfinite(kept.costs[kept.cell_mask][:, [PAD_ID, BOS_ID]]).all()
    others = [v for v in range(len(WORDS)) if v not in (PAD_ID, BOS_ID)]
    assert torch.equal(kept.costs[:, :, others], dropped.costs[:, :, others])
    assert dropped.stats["rollouts"] == kept.stats["rollouts"] - 2 * int(kept.cell_mask.sum())


# ---------------------------------------------------------------------------------- options
@pytest.mark.parametrize(
    "opts", [dict(rollout_vocab="short"), dict(shortlist_size=-1), dict(rollout_horizon=-2), dict(special_tokens="x")]
)
def test_bad_options_raise_config_error(opts: dict) -> None:
    with pytest.raises(ConfigError):
        SearnnConfig(**opts)


def test_train_help_lists_the_new_options() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "searnn.cli", "train", "--task", "ocr", "--objective", "searnn", "--help"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    for flag in ("--rollout-vocab", "--shortlist-size", "--rollout-horizon", "--special-tokens"):
        assert flag in done.stdout


# ---------------------------------------------------------------------------------- compact loss columns
@pytest.mark.parametrize("loss", ["kl", "ll", "llcas", "hinge"])
def test_compact_loss_columns_equal_the_dense_loss_and_gradient(loss: str) -> None:
    from searnn.objectives.searnn import compact_cells

    examples = make_examples(20, seed=10)
    task = make_task(examples)
    model, batch, _ = make_case(seed=10, batch_size=6)
    model = model.float()
    config = SearnnConfig(rollin="learned", rollout="learned", sample_tokens="topk", num_tokens=3,
                          searnn_loss=loss, kl_ties="reference" if loss == "kl" else "split")
    objective = SearnnObjective(config, task)
    result = objective.search(model, batch)
    b, t, v = result.rollin.logits.shape
    assert compact_cells(result, b, t, v) is not None
    logits = result.rollin.logits
    compact = objective.cell_losses(None, result, {})
    dense = objective.loss_fn(
        logits.float().reshape(b * t, v), result.costs.reshape(b * t, v), scale=objective.scale,
        prefer=result.reference.reshape(b * t),
    ).view(b, t)
    assert torch.allclose(compact, dense, atol=1e-5)
    (g_compact,) = torch.autograd.grad(compact.sum(), logits, retain_graph=True)
    (g_dense,) = torch.autograd.grad(dense.sum(), logits)
    assert torch.allclose(g_compact, g_dense, atol=1e-5)


def test_argmax_is_min_log_equals_the_dense_min_cost_mask() -> None:
    from searnn.objectives.cost_sensitive import min_cost_mask

    task = make_task(make_examples(20, seed=11))
    model, batch, _ = make_case(seed=11, batch_size=6)
    objective = SearnnObjective(SearnnConfig(sample_tokens="topk", num_tokens=3), task)
    torch.manual_seed(0)
    out = objective(model, batch)
    torch.manual_seed(0)
    objective.step_count = 0
    result = objective.search(model, batch)
    argmax = result.rollin.logits.detach().argmax(dim=-1)
    is_min = min_cost_mask(result.costs.flatten(0, 1)).view_as(result.costs)
    hit = is_min.gather(2, argmax[:, :, None]).squeeze(2) & result.cell_mask
    assert out.logs["argmax_is_min"] == pytest.approx(float(hit.sum()) / float(result.cell_mask.sum()))
