"""``searnn report --diagnostics``: the smoothing logs of metrics.jsonl read at each run's best epoch, averaged
over seeds, with the ground-truth mass of the token target computed from the run's alpha."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from searnn.cli import main as cli
from searnn.diagnostics_table import diagnostics_table, run_diagnostics
from searnn.errors import DataError
from searnn.run_results import epoch_records, load_result


def fake_run(run_dir: Path, row: str, seed: int, objective: str, config: dict, epochs: list[dict],
             best_epoch: int) -> Path:
    run_dir.mkdir(parents=True)
    results = {"task": "translation", "objective": objective, "metric": "bleu", "lower_is_better": False,
               "valid": {"bleu": 30.0}, "test": {"bleu": 31.0}, "best_epoch": best_epoch, "epochs": len(epochs),
               "seconds_per_epoch": 1.0, "train_seconds": 3.0, "seed": seed,
               "config": {"train": {"objective": objective}, "objective": config}}
    (run_dir / "results.json").write_text(json.dumps(results))
    (run_dir / "grid_run.json").write_text(json.dumps({"row": row, "seed": seed}))
    lines = [json.dumps({"epoch": i, "valid_bleu": 20.0 + i, **logs}) for i, logs in enumerate(epochs, 1)]
    (run_dir / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    return run_dir


def test_values_at_the_best_epoch_averaged_over_seeds_with_the_gt_mass(tmp_path, capsys):
    for seed, (self_mass, neighbour) in enumerate([(0.5, 0.10), (0.7, 0.20)], 1):
        fake_run(tmp_path / "tok" / f"seed{seed}", "tok", seed, "token-smoothing", {"alpha": 0.3},
                 [{"tok_self_mass": 0.0, "tok_top1_wrong": 0.9, "tok_top1_neighbour": 0.0},  # epoch 1: not read
                  {"tok_self_mass": self_mass, "tok_top1_wrong": 0.4, "tok_top1_neighbour": neighbour},
                  {"tok_self_mass": 0.0, "tok_top1_wrong": 0.9, "tok_top1_neighbour": 0.0}], best_epoch=2)
    fake_run(tmp_path / "seq" / "seed1", "seq", 1, "seq-smoothing", {"alpha": 0.1},
             [{"seq_distance": 2.5, "seq_ess": 4.2, "seq_w_max": 0.3}], best_epoch=1)
    fake_run(tmp_path / "mle" / "seed1", "mle", 1, "mle", {}, [{"nll": 2.0}], best_epoch=1)

    d = run_diagnostics(load_result(tmp_path / "tok" / "seed1"))
    assert d["tok_self_mass"] == 0.5 and d["gt_mass"] == pytest.approx(0.7 + 0.3 * 0.5)
    out = tmp_path / "report.json"
    assert cli(["report", str(tmp_path), "--diagnostics", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    gt = 100 * (0.7 + 0.3 * 0.6)
    assert f"| tok | token-smoothing | 2 | {gt:.1f}% | 60.0% | 40.0% | 15.0% | — | — | — |" in text
    assert "| seq | seq-smoothing | 1 | — | — | — | — | 2.50 | 4.20 | 0.30 |" in text
    assert "| mle | mle |" not in text.split("| row | objective | n | GT mass")[1]  # MLE logs none of them
    rows = {r["row"]: r for r in json.loads(out.read_text())["diagnostics"]}
    assert set(rows) == {"tok", "seq"} and [s["tok_top1_neighbour"] for s in rows["tok"]["seeds"]] == [0.1, 0.2]


def test_tok_seq_gt_mass_uses_the_token_weight_alpha2(tmp_path):
    rows = [{"tok_self_mass": 0.25}]
    for objective, config, expected in [("tok-seq", {"alpha1": 0.9, "alpha2": 0.2}, 0.8 + 0.2 * 0.25),
                                        ("label-smoothing", {"alpha": 0.1}, 0.9 + 0.1 * 0.25)]:
        run = load_result(fake_run(tmp_path / objective, objective, 1, objective, config, rows, best_epoch=1))
        assert run_diagnostics(run)["gt_mass"] == pytest.approx(expected)


def test_no_logged_diagnostics_is_said_in_one_line(tmp_path):
    fake_run(tmp_path / "mle" / "seed1", "mle", 1, "mle", {}, [{"nll": 2.0}], best_epoch=1)
    from searnn.report import group_runs

    text, rows = diagnostics_table(group_runs([load_result(tmp_path / "mle" / "seed1")], "row"))
    assert rows == [] and text == "(no row logged smoothing diagnostics)"


def test_a_torn_metrics_line_names_the_file_and_line(tmp_path):
    run = fake_run(tmp_path / "r", "r", 1, "mle", {}, [{"nll": 2.0}], best_epoch=1)
    with (run / "metrics.jsonl").open("a") as f:
        f.write('{"epoch": 2, "valid_bl')
    with pytest.raises(DataError, match=r"metrics.jsonl:2: invalid JSON"):
        epoch_records(run)


def test_report_diagnostics_on_a_torn_metrics_line_is_a_clear_error_not_a_skip(tmp_path, capsys):
    run = fake_run(tmp_path / "tok" / "seed1", "tok", 1, "token-smoothing", {"alpha": 0.3},
                   [{"tok_self_mass": 0.5}], best_epoch=1)
    with (run / "metrics.jsonl").open("a") as f:
        f.write('{"epoch": 2, "valid_bl')
    assert cli(["report", str(tmp_path), "--diagnostics"]) != 0
    err = capsys.readouterr().err
    assert "metrics.jsonl:2: invalid JSON" in err and "Traceback" not in err


def test_a_run_without_metrics_log_has_no_diagnostics(tmp_path):
    run = fake_run(tmp_path / "r", "r", 1, "token-smoothing", {"alpha": 0.3}, [{"tok_self_mass": 0.5}], best_epoch=1)
    (run / "metrics.jsonl").unlink()
    assert run_diagnostics(load_result(run)) == {}
