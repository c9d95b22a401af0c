"""Per-epoch smoothing diagnostics in metrics.jsonl (token smoothing: tok_self_mass, tok_top1_neighbour)."""

import json

from searnn.train import run
from test_beam_test import tiny_cfg


def test_token_smoothing_logs_the_top1_neighbour_rate_per_epoch(tmp_path):
    run(tiny_cfg(tmp_path, "tok", objective="token-smoothing", similarity="train", top_k=3, train_dim=4))
    records = [json.loads(line) for line in (tmp_path / "tok" / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 2
    for r in records:
        assert 0 <= r["tok_top1_neighbour"] <= r["tok_top1_wrong"] <= 1 and "tok_self_mass" in r
