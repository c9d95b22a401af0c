"""Cost and oracle calls by length buckets equal one padded call (every cost of the package)."""

from __future__ import annotations

import pytest
import torch

from searnn.costs import make_cost
from searnn.data.vocab import PAD_ID, Vocab
from searnn.search.bucketing import MIN_BUCKET, bucketed_complete, bucketed_cost, length_buckets

WORDS = Vocab([f"w{i}" for i in range(12)])
TAGS = Vocab(["O", "B-NP", "I-NP", "B-VP", "I-VP"])


def random_rows(n: int, width: int, vocab_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(0, width + 1, (n,), generator=g)
    seq = torch.randint(4, vocab_size, (n, width), generator=g)
    seq = torch.where(torch.arange(width)[None, :] < lengths[:, None], seq, torch.full_like(seq, PAD_ID))
    return seq, lengths


def test_length_buckets_cover_every_row_once_in_length_order() -> None:
    key = torch.randint(0, 30, (5 * MIN_BUCKET + 7,))
    parts = length_buckets(key, 4)
    assert len(parts) == 4
    rows = torch.cat(parts)
    assert sorted(rows.tolist()) == list(range(key.numel()))
    assert all(int(key[a].max()) <= int(key[b].min()) for a, b in zip(parts, parts[1:], strict=False))


@pytest.mark.parametrize("name", ["hamming", "edit", "bleu", "f1"])
def test_bucketed_cost_and_oracle_equal_one_padded_call(name: str) -> None:
    vocab = TAGS if name == "f1" else WORDS
    n, width = 3 * MIN_BUCKET, 14
    hyp, hyp_len = random_rows(n, width, len(vocab), 1)
    ref, ref_len = random_rows(n, width, len(vocab), 2)
    ref_len = ref_len.clamp(min=1)
    ref = torch.where(torch.arange(width)[None, :] < ref_len[:, None], ref.clamp(min=4), torch.full_like(ref, PAD_ID))
    cost = make_cost(name, vocab)
    assert torch.equal(bucketed_cost(cost, hyp, hyp_len, ref, ref_len), cost(hyp, hyp_len, ref, ref_len))
    prefix_len = torch.minimum(hyp_len, ref_len)
    seq, seq_len = bucketed_complete(cost, hyp, prefix_len, ref, ref_len, width + 3)
    ref_seq, ref_seq_len = cost.complete(hyp, prefix_len, ref, ref_len, width + 3)
    assert torch.equal(seq_len, ref_seq_len)
    w = int(ref_seq_len.max())
    assert torch.equal(seq[:, :w], ref_seq[:, :w])
    assert bool((seq[:, w:] == PAD_ID).all()) and bool((ref_seq[:, w:] == PAD_ID).all())
