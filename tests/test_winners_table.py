"""``searnn report --winners``: per objective, the best row on validation (never on test), the runner-up and the
margin, and the winner's values of the options its family varies, flagged when at the edge of a range."""

from __future__ import annotations

import json
from pathlib import Path

from searnn.cli import main as cli
from searnn.report import group_runs
from searnn.run_results import load_result
from searnn.winners_table import winners_table


def fake_run(root: Path, row: str, seed: int, objective: str, options: dict, valid: float, test: float,
             metric: str = "bleu", lower: bool = False) -> Path:
    run_dir = root / row / f"seed{seed}"
    run_dir.mkdir(parents=True)
    results = {"task": "translation", "objective": objective, "metric": metric, "lower_is_better": lower,
               "valid": {metric: valid}, "test": {metric: test}, "best_epoch": 1, "epochs": 1,
               "seconds_per_epoch": 1.0, "train_seconds": 1.0, "seed": seed,
               "config": {"train": {"objective": objective, "lr": options.pop("lr", 0.004)}, "objective": options}}
    (run_dir / "results.json").write_text(json.dumps(results))
    (run_dir / "grid_run.json").write_text(json.dumps({"row": row, "seed": seed}))
    return run_dir


def groups_of(root: Path):
    return group_runs([load_result(d) for d in sorted(root.glob("*/seed*"))], "row")


def test_winner_per_family_on_validation_with_margin_and_edge(tmp_path, capsys):
    # token smoothing: tau searched over 3 values, the winner at the largest (edge); alpha over 2 (never an edge)
    for tau, alpha, valid in [(0.1, 0.1, 30.0), (0.2, 0.1, 30.5), (0.5, 0.1, 31.0), (0.5, 0.3, 31.4)]:
        fake_run(tmp_path, f"tok-{tau}-{alpha}", 1, "token-smoothing", {"tok_tau": tau, "alpha": alpha},
                 valid, test=20.0)
    # MLE: the best test (40) belongs to the worse validation row, which must not win
    fake_run(tmp_path, "mle-lr1e-3", 1, "mle", {"lr": 0.001}, 31.0, test=40.0)
    fake_run(tmp_path, "mle-lr2e-3", 1, "mle", {"lr": 0.002}, 32.0, test=30.0)
    fake_run(tmp_path, "mle-lr4e-3", 1, "mle", {"lr": 0.004}, 31.5, test=30.0)
    out = tmp_path / "r.json"
    assert cli(["report", str(tmp_path), "--winners", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert ("| token-smoothing | translation | 4 | tok-0.5-0.3 | 31.40 | tok-0.5-0.1 | 31.00 | +0.40 | "
            "alpha 0.3 [0.1, 0.3]; tok_tau 0.5 [0.1, 0.2, 0.5] **edge** |") in text
    assert ("| mle | translation | 3 | mle-lr2e-3 | 32.00 | mle-lr4e-3 | 31.50 | +0.50 | "
            "lr 0.002 [0.001, 0.002, 0.004] |") in text
    rows = {r["family"]: r for r in json.loads(out.read_text())["winners"]}
    assert rows["token-smoothing"]["at_edge"] == ["tok_tau"] and rows["mle"]["at_edge"] == []
    assert rows["token-smoothing"]["values"] == {"alpha": 0.3, "tok_tau": 0.5}


def test_lower_is_better_and_means_over_seeds(tmp_path):
    # edit distance: lower wins; row b's mean (2.0) beats a's (2.5) though a has the single best seed (1.0)
    for seed, v in [(1, 1.0), (2, 4.0)]:
        fake_run(tmp_path, "a", seed, "searnn", {"kl_scale": 50}, v, 0.0, metric="edit", lower=True)
    for seed, v in [(1, 2.0), (2, 2.0)]:
        fake_run(tmp_path, "b", seed, "searnn", {"kl_scale": 200}, v, 0.0, metric="edit", lower=True)
    text, rows = winners_table(groups_of(tmp_path))
    assert rows[0]["winner"] == "b" and rows[0]["runner_up"] == "a" and rows[0]["margin"] == 0.5
    assert "| searnn | translation | 2 | b | 2.00 | a | 2.50 | +0.50 | kl_scale 200 [50, 200] |" in text


def test_a_family_of_one_and_no_validation(tmp_path):
    fake_run(tmp_path, "ls", 1, "label-smoothing", {"alpha": 0.1}, 30.0, 31.0)
    text, rows = winners_table(groups_of(tmp_path))
    assert "| label-smoothing | translation | 1 | ls | 30.00 | — | — | — | — |" in text
    assert rows[0]["runner_up"] is None and rows[0]["margin"] is None
    assert winners_table([]) == ("(no row has a validation figure)", [])
