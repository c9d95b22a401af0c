"""`searnn plot`: curves from run dirs (finished or not), grouping, seed bands, PNG output."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.image
import pytest

from searnn import plot
from searnn.cli import main as cli
from searnn.errors import DataError, SearnnError


def fake_curve_run(run_dir: Path, objective: str, values: list[float], secs_per_epoch: float,
                   finished: bool = True, row: str | None = None, metric: str = "cer") -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    records = [{"epoch": e + 1, "train_loss": 1.0, f"valid_{metric}": v, "train_seconds": secs_per_epoch * (e + 1)}
               for e, v in enumerate(values)]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (run_dir / "config.yaml").write_text(f"train:\n  task: ocr\n  objective: {objective}\n")
    if finished:
        results = {"task": "ocr", "objective": objective, "metric": metric, "valid": {metric: min(values)},
                   "test": {metric: min(values)}, "lower_is_better": metric == "cer"}
        (run_dir / "results.json").write_text(json.dumps(results))
    if row:
        (run_dir / "grid_run.json").write_text(json.dumps({"row": row}))
    return run_dir


@pytest.fixture
def runs(tmp_path):
    root = tmp_path / "grid"
    fake_curve_run(root / "mle" / "seed1", "mle", [40, 30, 25, 22, 21, 20], 10.0)
    fake_curve_run(root / "mle" / "seed2", "mle", [42, 33, 27, 24, 22, 21], 12.0)
    fake_curve_run(root / "mle" / "seed3", "mle", [39, 31, 26, 23], 11.0, finished=False)  # still training
    fake_curve_run(root / "kl" / "seed1", "searnn", [35, 24, 18, 15, 14, 13], 30.0)
    fake_curve_run(root / "kl" / "seed2", "searnn", [37, 25, 19, 16, 14, 14], 33.0)
    return root


def test_groups_and_band_statistics(runs):
    curves = [plot.load_curve(d) for d in sorted(runs.glob("*/seed*"))]
    groups = {g.label: g for g in plot.group_curves(curves)}
    assert set(groups) == {"mle", "kl"} and len(groups["mle"].curves) == 3
    s = groups["mle"].summary("minmax")
    assert s["epoch"] == [1, 2, 3, 4, 5, 6]
    assert s["mean"][0] == pytest.approx((40 + 42 + 39) / 3) and (s["low"][0], s["high"][0]) == (39, 42)
    assert s["mean"][5] == pytest.approx(20.5) and s["seconds"][0] == pytest.approx(11.0)  # 2 seeds at epoch 6
    sd = groups["kl"].summary("std")
    assert sd["low"][0] == pytest.approx(36 - 2 ** 0.5) and sd["high"][0] == pytest.approx(36 + 2 ** 0.5)
    by_objective = {g.label for g in plot.group_curves(curves, "objective")}
    assert by_objective == {"mle", "searnn"}


def test_plot_command_writes_a_png(runs, tmp_path, capsys):
    out = tmp_path / "fig" / "curves.png"
    assert cli(["plot", str(runs), "--out", str(out), "--title", "OCR smoke"]) == 0
    assert "2 curve(s) from 5 run(s)" in capsys.readouterr().out
    image = matplotlib.image.imread(out)
    height, width = image.shape[:2]
    assert width > 1.5 * height  # two panels side by side
    one = tmp_path / "epoch.png"
    assert cli(["plot", str(runs / "mle"), "--out", str(one), "--x", "time", "--band", "std"]) == 0
    h1, w1 = matplotlib.image.imread(one).shape[:2]
    assert w1 < width


def test_seed_band_draws_every_seed_under_the_mean(runs, tmp_path, monkeypatch):
    import matplotlib.axes

    drawn: list[list[float]] = []
    original = matplotlib.axes.Axes.plot

    def spy(self, *args, **kwargs):
        drawn.append([float(v) for v in args[1]])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", spy)
    assert cli(["plot", str(runs), "--out", str(tmp_path / "s.png"), "--x", "epoch", "--band", "seeds"]) == 0
    # per row: the mean, then each seed's own values (5 runs, 2 rows)
    assert len(drawn) == 2 + 5
    assert [40.0, 30.0, 25.0, 22.0, 21.0, 20.0] in drawn and [39.0, 31.0, 26.0, 23.0] in drawn
    drawn.clear()
    assert cli(["plot", str(runs), "--out", str(tmp_path / "m.png"), "--x", "epoch"]) == 0
    assert len(drawn) == 2  # the default band shades the spread: means only


def test_duplicate_epoch_records_keep_the_last(tmp_path):
    run = fake_curve_run(tmp_path / "r", "mle", [40, 30], 1.0)
    with (run / "metrics.jsonl").open("a") as f:  # epoch 2 logged again after a resume
        f.write(json.dumps({"epoch": 2, "valid_cer": 29.0, "train_seconds": 2.5}) + "\n")
    curve = plot.load_curve(run)
    assert curve.epochs == [1, 2] and curve.values == [40, 29.0] and curve.seconds == [1.0, 2.5]
    assert curve.row == "r" and curve.lower_is_better


def test_several_metrics_get_their_own_panels(tmp_path):
    fake_curve_run(tmp_path / "a", "mle", [30, 20], 1.0)
    fake_curve_run(tmp_path / "b", "mle", [10, 20], 1.0, metric="bleu")
    groups = plot.group_curves([plot.load_curve(tmp_path / "a"), plot.load_curve(tmp_path / "b")])
    path = plot.plot_groups(groups, tmp_path / "two.png")
    h, w = matplotlib.image.imread(path).shape[:2]
    assert h > 0.6 * w  # two rows of panels


def test_plot_errors(tmp_path):
    with pytest.raises(SearnnError, match="expected a .png"):
        cli_main(["plot", str(tmp_path), "--out", str(tmp_path / "x.pdf")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no run directory with a metrics.jsonl"):
        cli_main(["plot", str(tmp_path / "empty"), "--out", str(tmp_path / "x.png")])
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "metrics.jsonl").write_text('{"epoch": 1}\n')
    with pytest.raises(DataError, match=r"metrics.jsonl:1: expected an epoch record"):
        plot.load_curve(bad)


def cli_main(argv: list[str]) -> int:
    return plot.main(argv[1:])
