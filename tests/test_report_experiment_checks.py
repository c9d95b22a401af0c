"""``searnn report --group-by`` refuses to average different configurations (E14); ``searnn experiment``
checks that every ``warm_start`` exists or is written by an earlier row of the grid (E15)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from searnn import experiment, report
from searnn.cli import main as cli
from searnn.config import build_config
from searnn.errors import ConfigError, SearnnError
from searnn.train import run


def fake_run(run_dir: Path, seed: int, **options) -> Path:
    """A finished run dir: a ``results.json`` with the resolved config of ``options``."""
    cfg = build_config({"seed": seed, "run_dir": str(run_dir), **options})
    run_dir.mkdir(parents=True)
    results = {"task": "ocr", "objective": cfg.train.objective, "metric": "cer", "lower_is_better": True,
               "valid": {"cer": 5.0 + seed}, "test": {"cer": 6.0 + seed}, "seed": seed, "epochs": cfg.train.epochs,
               "best_epoch": 1, "config": cfg.to_dict()}
    (run_dir / "results.json").write_text(json.dumps(results))
    return run_dir


def test_group_by_refuses_runs_of_different_configs(tmp_path, capsys):
    fake_run(tmp_path / "a" / "seed1", 1, epochs=40)
    fake_run(tmp_path / "b" / "seed2", 2, epochs=2, lr=0.01)
    with pytest.raises(SearnnError, match=r"differ in more than the seed \(epochs, lr\).*--force"):
        report.main([str(tmp_path), "--group-by", "objective"])
    assert cli(["report", str(tmp_path), "--group-by", "objective"]) == 1
    assert "epochs, lr" in capsys.readouterr().err
    assert report.main([str(tmp_path), "--group-by", "objective", "--force"]) == 0
    assert "| mle |" in capsys.readouterr().out


def test_group_by_accepts_seeds_and_per_seed_paths(tmp_path, capsys):
    for seed in (1, 2, 3):
        fake_run(tmp_path / "row" / f"seed{seed}", seed, epochs=3, threads=seed,
                 warm_start=f"runs/base/seed{seed}")
    assert report.main([str(tmp_path), "--group-by", "objective"]) == 0
    assert "3" in capsys.readouterr().out


def test_config_differences_against_a_brute_force_comparison(tmp_path):
    runs = [report.load_result(fake_run(tmp_path / f"r{i}", i, **opts))
            for i, opts in enumerate([{"hidden": 16}, {"hidden": 16, "lr": 0.5}, {"hidden": 32}], start=1)]
    flat = [r.config for r in runs]
    expected = sorted(k for k in flat[0] if k not in report.SAME_RUN_KEYS
                      and any(f[k] != flat[0][k] for f in flat[1:]))
    assert report.config_differences(runs) == expected == ["hidden", "lr"]


def _capped_run(path: Path, seed: int, cap: int, trained: int, best: int, **options) -> report.RunResult:
    """A finished run with epoch cap ``cap`` that trained ``trained`` epochs, best at ``best`` (early stop 3)."""
    fake_run(path, seed, epochs=cap, early_stop=3, **options)
    data = json.loads((path / "results.json").read_text())
    data.update(epochs=trained, best_epoch=best)
    (path / "results.json").write_text(json.dumps(data))
    return report.load_result(path)


@pytest.mark.parametrize(("trained", "best", "options", "same"), [
    (16, 13, {}, True),                       # early-stopped at 16 < 25: a cap of 40 changes nothing
    (25, 24, {}, False),                      # it reached its cap of 25: with 40 it might have gone on
    (16, 15, {}, False),                      # ended before its cap without the early-stop condition
    (16, 13, {"time_budget": 600.0}, False),  # a time budget may have cut it
])
def test_a_raised_epoch_cap_is_no_difference_when_the_smaller_cap_did_not_bind(tmp_path, trained, best,
                                                                                 options, same):
    small = _capped_run(tmp_path / "a", 1, 25, trained, best, **options)
    large = _capped_run(tmp_path / "b", 2, 40, 26, 23, **options)
    assert report.config_differences([small, large]) == ([] if same else ["epochs"])
    assert report.config_differences([large, small]) == report.config_differences([small, large])


def test_the_trainer_and_the_report_share_the_early_stop_rule(tmp_path):
    """A run that cannot improve (a vanishing learning rate) stops ``early_stop`` epochs after its first one, and
    the report reads it as early-stopped (so raising its epoch cap would not have changed it)."""
    run_dir = tmp_path / "run"
    run(build_config({"task": "ocr", "limit_train": 64, "limit_valid": 16, "batch_size": 32, "hidden": 8,
                      "emb_dim": 8, "tgt_emb_dim": 8, "progress": False, "checkpoint_minutes": 0.0,
                      "lr": 1e-12, "epochs": 10, "early_stop": 2, "run_dir": str(run_dir)}))
    result = report.load_result(run_dir)
    assert (result.best_epoch, result.epochs) == (1, 3)
    assert json.loads((run_dir / "results.json").read_text())["stopped"] == "no validation gain for 2 epochs"
    assert report._early_stopped(result)


GRID = """\
name: warm
out: {out}
seeds: [1, 2]
base: {{task: ocr, epochs: 1}}
runs:
  - name: base
  - name: cont
    warm_start: {out}/base/seed{{seed}}
  - name: lost
    warm_start: {missing}/seed{{seed}}
"""


def test_dry_run_flags_missing_warm_starts(tmp_path, capsys):
    out, missing = tmp_path / "out", tmp_path / "missing"
    path = tmp_path / "grid.yaml"
    path.write_text(GRID.format(out=out, missing=missing))
    assert cli(["experiment", str(path), "--dry-run"]) == 1
    text = capsys.readouterr().out
    assert f"cont/seed2  new     {out}/cont/seed2  (warm start {out}/base/seed2 will exist after row 'base', seed 2)" \
        in text
    assert f"warm_start '{missing}/seed1' does not exist" in text
    notes, problems = experiment.warm_start_notes(experiment.load_grid(path))
    assert sorted(notes) == ["cont/seed1", "cont/seed2"] and len(problems) == 2
    with pytest.raises(ConfigError, match=r"row 'lost', seed 1: warm_start .* does not exist \(.*\) \(and 1 more"):
        experiment.main([str(path)])
    assert not out.exists()  # refused before launching anything


def test_existing_warm_start_is_not_flagged(tmp_path, capsys):
    out, done = tmp_path / "out", tmp_path / "done"
    for seed in (1, 2):
        (done / f"seed{seed}").mkdir(parents=True)
        (done / f"seed{seed}" / "best.pt").write_bytes(b"")
    path = tmp_path / "grid.yaml"
    path.write_text(GRID.format(out=out, missing=done).replace("  - name: cont\n", "  - name: cont\n"))
    notes, problems = experiment.warm_start_notes(experiment.load_grid(path))
    assert problems == [] and len(notes) == 2
