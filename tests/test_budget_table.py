"""``searnn report --at-epochs / --at-seconds``: rows compared at equal epochs and equal training time, read from
each run's metrics.jsonl, against a brute-force reading of the same curves."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from searnn.budget_table import best_within, budget_table, parse_budgets
from searnn.cli import main as cli
from searnn.errors import ConfigError, DataError
from searnn.report import group_runs
from searnn.run_results import load_result


def fake_run(run_dir: Path, row: str, seed: int, objective: str, curve: list[tuple[float, float]],
             lower_is_better: bool = False, metric: str = "bleu") -> Path:
    """A finished run whose epoch i (1-based) took ``curve[i-1][0]`` seconds and scored ``curve[i-1][1]``."""
    run_dir.mkdir(parents=True)
    values = [v for _, v in curve]
    best = (min if lower_is_better else max)(values)
    results = {"task": "translation", "objective": objective, "metric": metric, "lower_is_better": lower_is_better,
               "valid": {metric: best}, "test": {metric: best + 1}, "best_epoch": values.index(best) + 1,
               "epochs": len(curve), "seconds_per_epoch": 1.0, "train_seconds": sum(s for s, _ in curve),
               "seed": seed, "config": {"train": {"objective": objective}}}
    (run_dir / "results.json").write_text(json.dumps(results))
    (run_dir / "grid_run.json").write_text(json.dumps({"row": row, "seed": seed}))
    total, lines = 0.0, []
    for epoch, (seconds, value) in enumerate(curve, 1):
        total += seconds
        lines.append(json.dumps({"epoch": epoch, f"valid_{metric}": value, "train_seconds": total}))
    (run_dir / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    return run_dir


def naive(curve: list[tuple[float, float]], epochs: float | None, seconds: float | None, lower: bool):
    """Brute force: walk the epochs, keep the best value of those inside the budget."""
    best, elapsed = None, 0.0
    for epoch, (secs, value) in enumerate(curve, 1):
        elapsed += secs
        inside = epoch <= epochs if epochs is not None else elapsed <= seconds
        if inside and (best is None or (value < best if lower else value > best)):
            best = value
    return best


@pytest.mark.parametrize("lower", [False, True])
def test_best_within_matches_a_brute_force_walk(tmp_path, lower):
    rng = random.Random(3)
    for k in range(20):
        curve = [(rng.uniform(5, 50), rng.uniform(0, 40)) for _ in range(rng.randint(1, 12))]
        run = load_result(fake_run(tmp_path / f"r{k}", "row", 1, "mle", curve, lower_is_better=lower))
        for epochs in (1, 3, 7, 30):
            got, stopped = best_within(run, epochs=epochs)
            assert got == naive(curve, epochs, None, lower)
            assert stopped == (len(curve) < epochs)
        for seconds in (4.0, 30.0, 120.0, 1e6):
            got, stopped = best_within(run, seconds=seconds)
            assert got == naive(curve, None, seconds, lower)
            assert stopped == (sum(s for s, _ in curve) < seconds)


def test_table_means_over_seeds_marks_stopped_runs_and_missing_figures(tmp_path, capsys):
    # SeaRNN: slow epochs (100 s), MLE: fast (10 s) and early-stopped after 3 epochs.
    fake_run(tmp_path / "searnn" / "seed1", "searnn", 1, "searnn", [(100, 10), (100, 20), (100, 30), (100, 25)])
    fake_run(tmp_path / "searnn" / "seed2", "searnn", 2, "searnn", [(100, 12), (100, 22), (100, 26), (100, 29)])
    fake_run(tmp_path / "mle" / "seed1", "mle", 1, "mle", [(10, 5), (10, 15), (10, 14)])
    fake_run(tmp_path / "mle" / "seed2", "mle", 2, "mle", [(10, 7), (150, 17), (10, 16)])
    groups = group_runs([load_result(d) for d in sorted(tmp_path.glob("*/seed*"))], "row")
    text, rows = budget_table(groups, [2, 4], [50, 250])
    by_row = {r["row"]: {b["label"]: b for b in r["budgets"]} for r in rows}
    assert by_row["searnn"]["2 ep"]["mean"] == pytest.approx(21.0)
    assert by_row["searnn"]["4 ep"]["values"] == [30.0, 29.0] and by_row["searnn"]["4 ep"]["stopped"] == 0
    assert by_row["searnn"]["50 s"]["n"] == 0  # no SeaRNN epoch ends within 50 s
    assert by_row["searnn"]["250 s"]["values"] == [20.0, 22.0]
    assert by_row["mle"]["4 ep"]["values"] == [15.0, 17.0] and by_row["mle"]["4 ep"]["stopped"] == 2
    assert by_row["mle"]["50 s"]["values"] == [15.0, 7.0]  # seed 2's second epoch ends at 160 s
    assert by_row["mle"]["250 s"]["stopped"] == 2
    lines = {line.split(" | ")[0].strip("| "): line for line in text.splitlines()}
    assert "| — |" in lines["searnn"]
    assert "16.00 ± 1.41 (2 stopped)" in lines["mle"]

    assert cli(["report", str(tmp_path), "--at-epochs", "2,4", "--at-seconds", "250",
                "--out", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "| row | objective | metric | 2 ep | 4 ep | 250 s |" in out
    saved = json.loads((tmp_path / "r.json").read_text())
    assert sorted(r["row"] for r in saved["budgets"]) == ["mle", "searnn"]


def test_bad_budgets_and_a_missing_log_are_clear_errors(tmp_path, capsys):
    with pytest.raises(ConfigError, match="'ten' is not a number"):
        parse_budgets("5,ten", "--at-epochs")
    with pytest.raises(ConfigError, match="positive"):
        parse_budgets("0", "--at-seconds")
    assert parse_budgets(None, "--at-epochs") == []
    run_dir = fake_run(tmp_path / "mle" / "seed1", "mle", 1, "mle", [(10, 5)])
    (run_dir / "metrics.jsonl").unlink()
    with pytest.raises(DataError, match="metrics.jsonl: missing"):
        best_within(load_result(run_dir), epochs=3)
    assert cli(["report", str(tmp_path), "--at-epochs", "x"]) != 0
    assert "not a number" in capsys.readouterr().err
