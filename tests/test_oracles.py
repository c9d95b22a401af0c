"""Reference policies: brute force over every completion (hamming, edit, f1), a Python loop over suffix
lengths (bleu), a Python rewrite of the maximize-F1 rule."""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter

import pytest
import torch
from rapidfuzz.distance import Levenshtein

from searnn.costs import make_cost, pad_sequences
from searnn.costs.base import Cost
from searnn.data.vocab import EOS_ID, Vocab

WORDS = Vocab(["a", "b", "c", "d"])  # ids 4..7
TAGS = Vocab(["O", "B-A", "I-A", "B-B", "I-B"])  # ids 4..8


def garbage_pad(seqs: list[list[int]], rng: random.Random, extra: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad with random ids (negative and out-of-vocabulary ones too) instead of PAD."""
    ids, lengths = pad_sequences(seqs)
    width = ids.shape[1] + extra
    junk = torch.tensor([rng.randint(-5, 500) for _ in range(len(seqs) * width)], dtype=torch.long)
    junk = junk.reshape(len(seqs), width)
    mask = torch.arange(width) < lengths[:, None]
    return torch.where(mask, torch.cat([ids, junk[:, ids.shape[1] :]], 1), junk), lengths


def run_oracle(cost: Cost, prefixes, refs, max_len: int, rng: random.Random) -> list[list[int]]:
    seq, seq_len = cost.complete(*garbage_pad(prefixes, rng), *garbage_pad(refs, rng), max_len)
    assert seq.dtype == torch.long and seq_len.shape == (len(prefixes),)
    out = [seq[n, : int(seq_len[n])].tolist() for n in range(len(prefixes))]
    for q, s in zip(prefixes, out, strict=True):
        assert s[: len(q)] == q and len(s) <= max(max_len, len(q))
    return out


def cost_of(cost: Cost, hyps: list[list[int]], ref: list[int]) -> list[float]:
    return cost(*pad_sequences(hyps), *pad_sequences([ref] * len(hyps))).tolist()


def best_by_bruteforce(cost: Cost, q: list[int], ref: list[int], max_len: int, alphabet: list[int]) -> float:
    """Minimum cost over every completion of q of at most max_len - |q| tokens."""
    cands = [q + list(c) for k in range(max(max_len - len(q), 0) + 1) for c in itertools.product(alphabet, repeat=k)]
    return min(cost_of(cost, cands, ref))


def random_cases(rng: random.Random, n: int, alphabet: list[int], max_ref: int = 4, max_extra: int = 4):
    """(prefix, ref, max_len) triples; max_len is sometimes shorter than the reference."""
    cases = []
    for _ in range(n):
        ref = [rng.choice(alphabet) for _ in range(rng.randint(0, max_ref))]
        q = [rng.choice(alphabet) for _ in range(rng.randint(0, 3))]
        cases.append((q, ref, len(q) + rng.randint(0, max_extra)))
    return cases


# ----------------------------------------------------------------------------- hamming and edit


@pytest.mark.parametrize("name", ["hamming", "edit"])
def test_oracle_is_optimal_bruteforce(name):
    rng = random.Random(10)
    cost = make_cost(name, WORDS)
    alphabet = [4, 5, 6]
    for q, ref, max_len in random_cases(rng, 40, alphabet):
        (seq,) = run_oracle(cost, [q], [ref], max_len, rng)
        assert cost_of(cost, [seq], ref)[0] == pytest.approx(best_by_bruteforce(cost, q, ref, max_len, alphabet))


@pytest.mark.parametrize("name", ["hamming", "edit", "bleu", "f1"])
def test_batched_oracle_equals_singletons(name):
    rng = random.Random(11)
    vocab = TAGS if name == "f1" else WORDS
    alphabet = list(range(4, len(vocab)))
    cases = random_cases(rng, 30, alphabet, max_ref=7)
    max_len = 9
    cost = make_cost(name, vocab)
    batch = run_oracle(cost, [c[0] for c in cases], [c[1] for c in cases], max_len, rng)
    singles = [run_oracle(cost, [q], [ref], max_len, rng)[0] for q, ref, _ in cases]
    assert batch == singles


def test_hamming_oracle_copies_by_position():
    rng = random.Random(12)
    cost = make_cost("hamming", WORDS)
    out = run_oracle(cost, [[7, 7], [7, 7, 7, 7], []], [[4, 5, 6], [4, 5], [4, 5, 6]], 10, rng)
    assert out == [[7, 7, 6], [7, 7, 7, 7], [4, 5, 6]]
    assert run_oracle(cost, [[7]], [[4, 5, 6, 4]], 3, rng) == [[7, 5, 6]]


def test_edit_oracle_cost_is_min_over_reference_prefixes():
    rng = random.Random(13)
    cost = make_cost("edit", WORDS)
    cases = random_cases(rng, 100, [4, 5, 6, 7], max_ref=8)
    qs, refs = [c[0] for c in cases], [c[1] for c in cases]
    seqs = run_oracle(cost, qs, refs, 20, rng)
    for q, ref, s in zip(qs, refs, seqs, strict=True):
        best = min(Levenshtein.distance(q, ref[:j]) for j in range(len(ref) + 1))
        assert Levenshtein.distance(s, ref) == best


def test_edit_oracle_ties_go_to_the_shortest_completion():
    rng = random.Random(14)
    cost = make_cost("edit", WORDS)
    # "x" vs "ab": ED to "", "a", "ab" is 1, 1, 2 -> j* = 1 (x substitutes a), completion "b".
    # "b" vs "ab": ED to "a", "ab" is 1, 1 -> j* = 2 (a was skipped), no completion.
    assert run_oracle(cost, [[7], [5]], [[4, 5], [4, 5]], 10, rng) == [[7, 5], [5]]
    # Too little room (2 tokens for "abc"): "ab" (j = 0, then 1 missing) and "bc" (j = 1) both cost 1.
    assert run_oracle(cost, [[]], [[4, 5, 6]], 2, rng) == [[5, 6]]


def test_prefix_longer_than_max_len_is_kept():
    rng = random.Random(15)
    for name, vocab in [("hamming", WORDS), ("edit", WORDS), ("bleu", WORDS), ("f1", TAGS)]:
        assert run_oracle(make_cost(name, vocab), [[4, 5, 6]], [[4, 5, 6, 7]], 2, rng) == [[4, 5, 6]]


# ----------------------------------------------------------------------------- bleu


def py_bleu1(h: list[int], r: list[int]) -> float:
    if not h:
        return 0.0
    m = sum(min(c, Counter(r)[g]) for g, c in Counter(h).items())
    if m == 0:
        return 0.0
    bp = 1.0 if len(h) >= len(r) else math.exp(1 - len(r) / len(h))
    return bp * ((m + 1) / (len(h) + 1))


def py_best_suffix(q: list[int], ref: list[int], max_len: int) -> list[int]:
    """Appendix C.2: try s = 0 .. min(max_len - |q|, |ref|), keep the first best (strict >)."""
    best_s, best = 0, py_bleu1(q, ref)
    for s in range(1, min(max_len - len(q), len(ref)) + 1):
        score = py_bleu1(q + ref[len(ref) - s :], ref)
        if score > best:
            best_s, best = s, score
    return q + ref[len(ref) - best_s :] if best_s else list(q)


def test_bleu_oracle_equals_python_loop():
    rng = random.Random(16)
    cost = make_cost("bleu", WORDS)
    for alphabet in ([4, 5], [4, 5, 6, 7]):  # two letters: many ties
        cases = random_cases(rng, 150, alphabet, max_ref=8, max_extra=9)
        for max_len in (3, 6, 12):
            qs, refs = [c[0] for c in cases], [c[1] for c in cases]
            got = run_oracle(cost, qs, refs, max_len, rng)
            assert got == [py_best_suffix(q, r, max_len) for q, r in zip(qs, refs, strict=True)]


def test_bleu_oracle_golden():
    rng = random.Random(17)
    cost = make_cost("bleu", WORDS)
    # q = "a", ref = "a b c": s=0 -> BP e^-2 * 2/2; s=1 "a c" -> e^-0.5 * 3/3; s=2 "a b c" -> 4/4 = 1.
    assert run_oracle(cost, [[4]], [[4, 5, 6]], 10, rng) == [[4, 5, 6]]
    # Nothing matches at all: every score is 0 -> s = 0 ... unless a suffix brings a match.
    assert run_oracle(cost, [[7]], [[]], 10, rng) == [[7]]
    # q = "a b c" already covers ref "a b c": any suffix only lowers precision.
    assert run_oracle(cost, [[4, 5, 6]], [[4, 5, 6]], 10, rng) == [[4, 5, 6]]


# ----------------------------------------------------------------------------- f1


def py_f1_complete(q: list[str], ref: list[str], max_len: int) -> list[str]:
    """The maximize-F1 rule of ChunkF1Cost's docstring, written from the text."""
    p = len(q)
    if p >= len(ref):
        return list(q)

    def starts(j: int) -> bool:  # conlleval: B-X, or I-X not continuing a chunk of X
        if ref[j] == "O":
            return False
        return ref[j].startswith("B-") or j == 0 or ref[j - 1] == "O" or ref[j - 1][2:] != ref[j][2:]

    b = next((j for j in range(p, len(ref)) if j == 0 or ref[j] == "O" or starts(j)), len(ref))
    ext = "I-" + q[-1][2:] if q and q[-1].startswith("B-") else (q[-1] if q else "O")
    copied = ["B-" + t[2:] if starts(j) else t for j, t in enumerate(ref)][b:]
    out = list(q) + [ext] * (b - p) + copied
    cut = max(max_len, p)
    if cut < len(ref) and ref[cut] != "O" and not starts(cut):  # the cut splits the chunk going on at cut
        s = max(j for j in range(cut) if starts(j))
        if s >= b:
            out[s:cut] = ["O"] * (cut - s)
    return out[:cut]


def test_f1_oracle_equals_rule():
    rng = random.Random(18)
    cost = make_cost("f1", TAGS)
    tags = TAGS.itos[4:]
    for max_len in (2, 4, 9):
        qs = [[rng.choice(tags) for _ in range(rng.randint(0, 5))] for _ in range(200)]
        refs = [[rng.choice(tags) for _ in range(rng.randint(0, 8))] for _ in range(200)]
        got = run_oracle(cost, [TAGS.encode(q) for q in qs], [TAGS.encode(r) for r in refs], max_len, rng)
        expect = [TAGS.encode(py_f1_complete(q, r, max_len)) for q, r in zip(qs, refs, strict=True)]
        assert got == expect


def fast_pad(seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """pad_sequences in one tensor construction (many short rows)."""
    width = max(map(len, seqs), default=0)
    return torch.tensor([q + [0] * (width - len(q)) for q in seqs]).view(len(seqs), width), torch.tensor(
        [len(q) for q in seqs]
    )


def complete_many(cost: Cost, prefixes: list[list[int]], refs: list[list[int]], max_len: int) -> list[list[int]]:
    seq, seq_len = cost.complete(*fast_pad(prefixes), *fast_pad(refs), max_len)
    return [row[:n] for row, n in zip(seq.tolist(), seq_len.tolist(), strict=True)]


class Enumerated:
    """Every sequence of at most ``longest`` tokens over ``alphabet``, its cost against each of ``refs`` (one
    batched call), and the minimum cost over the completions of a prefix (masks, no Python loop)."""

    def __init__(self, cost: Cost, alphabet: list[int], longest: int, refs: list[list[int]]):
        self.seqs = [list(c) for k in range(longest + 1) for c in itertools.product(alphabet, repeat=k)]
        self.index = {tuple(q): i for i, q in enumerate(self.seqs)}
        n = len(self.seqs)
        hyp, hyp_len = fast_pad(self.seqs * len(refs))
        ref, ref_len = fast_pad([r for r in refs for _ in range(n)])
        self.costs = cost(hyp, hyp_len, ref, ref_len).view(len(refs), n)  # (R, S)
        self.lengths = torch.tensor([len(q) for q in self.seqs])
        self.padded = torch.tensor([q + [-1] * (longest - len(q)) for q in self.seqs]).view(n, longest)

    def best(self, prefixes: list[list[int]], max_len: int) -> torch.Tensor:
        """``(R, Q)``: minimum cost against each reference over each prefix and its completions of at most
        ``max_len`` tokens in all."""
        ok = torch.stack([
            (self.padded[:, : len(q)] == torch.tensor(q, dtype=torch.long)).all(1)
            & (self.lengths <= max(max_len, len(q)))
            for q in prefixes
        ])  # (Q, S)
        return torch.where(ok[None], self.costs[:, None, :], torch.inf).amin(2)


def test_f1_oracle_is_optimal_bruteforce():
    """Every prefix of up to 2 tags, every reference of up to 3 tags over O, B-A, I-A, B-B, I-B (I- openings
    included), every max_len from 0 to 4: the oracle's cost is the minimum over all completions."""
    cost = make_cost("f1", TAGS)
    alphabet = list(range(4, 9))
    refs = [list(c) for k in range(4) for c in itertools.product(alphabet, repeat=k)]
    prefixes = [q for q in refs if len(q) <= 2]
    table = Enumerated(cost, alphabet, 4, refs)
    cases = [(q, r) for r in refs for q in prefixes]
    for max_len in range(5):
        out = complete_many(cost, [q for q, _ in cases], [r for _, r in cases], max_len)
        assert all(o[: len(q)] == q and len(o) <= max(max_len, len(q)) for o, (q, _) in zip(out, cases, strict=True))
        got = cost(*fast_pad(out), *fast_pad([r for _, r in cases])).view(len(refs), len(prefixes))
        bad = torch.nonzero(~torch.isclose(got, table.best(prefixes, max_len))).tolist()
        assert not [(prefixes[i], refs[r], max_len) for r, i in bad]


def test_f1_oracle_golden():
    rng = random.Random(20)
    enc = TAGS.encode
    cost = make_cost("f1", TAGS)
    # prefix "B-A" inside gold chunk A(0..2): extend with I-A up to the boundary at 3 (O), then copy.
    got = run_oracle(cost, [enc(["B-A"])], [enc("B-A I-A I-A O B-B".split())], 10, rng)
    assert got == [enc("B-A I-A I-A O B-B".split())]
    # prefix "O" where gold continues chunk B(0..1): extend O, then copy from B-A at 2.
    got = run_oracle(cost, [enc(["O"])], [enc("B-B I-B B-A".split())], 10, rng)
    assert got == [enc("O O B-A".split())]
    # reference chunk opened by I-A after O: copying I-A would continue the prefix's chunk A (F1 0);
    # B-A opens it (F1 2/3)
    got = run_oracle(cost, [enc(["B-A"])], [enc(["O", "I-A"])], 2, rng)
    assert got == [enc(["B-A", "B-A"])]
    assert cost_of(cost, got, enc(["O", "I-A"]))[0] == pytest.approx(1 / 3)
    # max_len 3 < |y|: the chunk B(2..3) cannot be matched, so it is not started (O), A(0..1) is
    got = run_oracle(cost, [enc([])], [enc("B-A I-A B-B I-B".split())], 3, rng)
    assert got == [enc("B-A I-A O".split())]


# ----------------------------------------------------------------------------- next-token oracles


def next_tokens(cost: Cost, prefixes: list[list[int]], refs: list[list[int]], max_len: int) -> list[int]:
    """The mixed-cell roll-in's reference token for each (prefix, reference)."""
    from searnn.search.rollin import _oracle_next

    width = max(len(q) for q in prefixes)
    tokens = fast_pad([q + [EOS_ID] * (width - len(q)) for q in prefixes])[0]
    assert len({len(q) for q in prefixes}) == 1
    ref, ref_len = fast_pad(refs)
    return _oracle_next(cost, tokens, width, ref, ref_len, max_len).tolist()


@pytest.mark.parametrize("name", ["hamming", "edit", "f1"])
def test_next_token_oracle_starts_an_optimal_completion(name):
    """Exact oracles: for every prefix (up to 2 tokens) and reference (up to 3) over a small alphabet, the
    roll-in's oracle token (EOS: stop) starts a completion of minimum cost (outputs up to 4 tokens)."""
    vocab = TAGS if name == "f1" else WORDS
    alphabet = list(range(4, len(vocab)))
    cost = make_cost(name, vocab)
    refs = [list(c) for k in range(4) for c in itertools.product(alphabet, repeat=k)]
    max_len = 4
    table = Enumerated(cost, alphabet, max_len, refs)
    for plen in range(3):
        qs = [q for q in refs if len(q) == plen]
        toks = next_tokens(cost, [q for _ in refs for q in qs], [r for r in refs for _ in qs], max_len)
        best = table.best(qs, max_len)  # (R, Q)
        # best cost once the oracle's token is taken: q + token and its completions, or q itself (EOS)
        ext = table.best([q + [a] for q in qs for a in alphabet], max_len).view(len(refs), len(qs), len(alphabet))
        stop = table.costs[:, [table.index[tuple(q)] for q in qs]]  # (R, Q)
        ext = torch.cat([ext, stop[:, :, None]], dim=2)  # column A: EOS
        column = torch.tensor([alphabet.index(t) if t != EOS_ID else len(alphabet) for t in toks])
        after = ext.gather(2, column.view(len(refs), len(qs), 1)).squeeze(2)
        bad = torch.nonzero(~torch.isclose(after, best)).tolist()
        assert not [(qs[i], refs[r], toks[r * len(qs) + i]) for r, i in bad]


def test_next_token_oracle_follows_the_full_completion():
    """For reference "ab" the best one-token-then-stop output ties "a" with "b" (edit) or prefers "b"
    (BLEU's brevity penalty is equal, the tie goes to the shorter suffix); the full oracle starts with "a"."""
    for name in ("edit", "bleu"):
        cost = make_cost(name, WORDS)
        assert next_tokens(cost, [[]], [[4, 5]], 6) == [4], name
        assert next_tokens(cost, [[4]], [[4, 5]], 6) == [5], name
        assert next_tokens(cost, [[4, 5]], [[4, 5]], 6) == [EOS_ID], name


def test_bleu_next_token_is_the_first_of_the_best_bleu1_suffix():
    """BLEU's oracle is a heuristic (best BLEU-1 suffix, not the BLEU-4 optimum): its next token is the first
    token of the completion :func:`py_best_suffix` builds (EOS when that suffix is empty)."""
    rng = random.Random(21)
    cost = make_cost("bleu", WORDS)
    for plen in range(4):
        cases = [([rng.choice([4, 5, 6]) for _ in range(plen)], [rng.choice([4, 5, 6, 7])
                  for _ in range(rng.randint(0, 6))]) for _ in range(60)]
        got = next_tokens(cost, [q for q, _ in cases], [r for _, r in cases], 12)
        for (q, ref), tok in zip(cases, got, strict=True):
            full = py_best_suffix(q, ref, 12)
            assert tok == (full[plen] if len(full) > plen else EOS_ID), (q, ref)


def test_mixed_cell_rollin_with_the_oracle_always_rebuilds_the_reference():
    """With p = 1 every decision is the oracle's: from the empty prefix it rolls in the reference itself."""
    from searnn.data.batch import Example, collate
    from searnn.models import ModelConfig, Seq2Seq
    from searnn.search.rollin import roll_in

    torch.manual_seed(0)
    refs = [[4, 5], [5, 4, 6], [6, 6, 4, 5], [7]]
    batch = collate([Example([[4 + i % 3] for i in range(3)], r) for r in refs])
    model = Seq2Seq(ModelConfig(hidden=8, emb_dim=8, tgt_emb_dim=8), [10], None, len(WORDS)).eval()
    for name in ("hamming", "edit", "bleu"):
        r = roll_in(model, batch, "mixed-cell", 1.0, batch.tgt_len - 1 + 3, False, oracle=make_cost(name, WORDS))
        got = [r.tokens[n, : int(r.cells[n]) - 1].tolist() for n in range(len(refs))]
        assert got == refs, name
