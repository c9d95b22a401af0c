"""`searnn experiment` (grids of runs) and `searnn report` (aggregation).

Fast tests use a fake trainer (a tiny script writing results.json) to check validation, scheduling,
skipping, failures, interruption and the table; the slow ones train real (tiny) OCR grids, check the
aggregation, and that an interrupted grid finishes with the numbers of an uninterrupted one.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from searnn import experiment, launch, report
from searnn.cli import main as cli
from searnn.config import build_config
from searnn.errors import ConfigError, DataError

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "configs" / "experiments" / "smoke_ocr.yaml"

FAKE_TRAIN = r'''
import json, os, sys, time
from pathlib import Path
import yaml

opts = yaml.safe_load(Path(sys.argv[1]).read_text())
run_dir = Path(opts["run_dir"])
(run_dir / "pid").write_text(str(os.getpid()))
print("fake training", run_dir, flush=True)
if (run_dir.parent.parent / "HANG").exists() and opts["hidden"] == 7:
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a trainer started from a background shell inherits it

    def save_and_stop(signum, frame):
        (run_dir / "stopped").write_text("saved")
        sys.exit(130)

    signal.signal(signal.SIGTERM, save_and_stop)  # what `searnn train` does: checkpoint, then exit
    time.sleep(120)
if opts["lr"] == 0.5:
    print("boom: this run fails", flush=True)
    sys.exit(3)
race = run_dir.parent.parent / "RACE"
if race.exists() and not (run_dir / "raced").exists():  # another grid's trainer locks the run as we start
    import subprocess
    (run_dir / "raced").write_text("1")
    ready = run_dir / "other_ready"
    holder = ("import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
              "fcntl.flock(fd, fcntl.LOCK_EX); open(sys.argv[2], 'w').write('1'); time.sleep(1.5)")
    subprocess.Popen([sys.executable, "-c", holder, str(run_dir / "train.lock"), str(ready)],
                     start_new_session=True)
    while not ready.exists():
        time.sleep(0.02)
    print("searnn train: error: this run is being trained by another process", flush=True)
    sys.exit(1)
value = 100 * opts["lr"] + opts["seed"]
results = {"task": opts["task"], "objective": opts.get("objective", "mle"), "metric": "cer",
           "lower_is_better": True, "valid": {"cer": value}, "test": {"cer": value + 1}, "best_epoch": 1,
           "epochs": opts["epochs"], "seconds_per_epoch": 0.5, "train_seconds": 1.0 * opts["epochs"],
           "seed": opts["seed"]}
(run_dir / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "valid_cer": value, "train_seconds": 1.0}) + "\n")
(run_dir / "results.json").write_text(json.dumps(results))
'''


@pytest.fixture
def fake_train(tmp_path, monkeypatch):
    """Replace `searnn train` subprocesses by the fake trainer above."""
    script = tmp_path / "fake_train.py"
    script.write_text(FAKE_TRAIN)
    monkeypatch.setattr(launch, "train_command", lambda options: [sys.executable, str(script), str(options)])
    return script


def write_grid(tmp_path: Path, text: str, name: str = "grid.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


GRID = """\
name: fake
out: {out}
jobs: 2
seeds: [1, 2]
base:
  task: ocr
  epochs: 2
  hidden: 8
runs:
  - name: a
    lr: 0.01
  - name: b
    lr: 0.02
    seeds: [1, 2, 3]
"""


def mtimes(out: Path) -> dict[str, int]:
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in sorted(out.glob("*/seed*/results.json"))}


# --------------------------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("name: g\nsed: [1]\nruns: [{name: a}]\n", r"grid.yaml:2: unknown top-level key 'sed'; did you mean seeds"),
        ("runs: [{name: a}]\n", r"missing `name:`"),
        ("name: g\n", r"`runs` must be a non-empty list"),
        ("name: g\nruns:\n  - lr: 0.1\n", r"grid.yaml:3: runs\[0\] has no `name`"),
        ("name: g\nruns:\n  - name: a\n  - name: a\n", r"two rows are named 'a'"),
        ("name: g\nruns:\n  - name: a/b\n", r"row name 'a/b' may hold only"),
        ("name: g\nruns:\n  - name: a\n  - name: b\n    hiden: 3\n",
         r"grid.yaml:4: row 'b': unknown option 'hiden'; did you mean hidden"),
        ("name: g\nbase: {lr: fast}\nruns: [{name: a}]\n", r"row 'a': option --lr: expected float, got 'fast'"),
        ("name: g\nruns: [{name: a, objective: nope}]\n", r"row 'a': unknown objective 'nope'"),
        ("name: g\nruns: [{name: a, seed: 3}]\n", r"option 'seed' cannot be set in a grid"),
        ("name: g\nbase: {run_dir: x}\nruns: [{name: a}]\n", r"option 'run_dir' cannot be set in a grid"),
        ("name: g\nseeds: 3\nruns: [{name: a}]\n", r"`seeds` must be a non-empty list"),
        ("name: g\nseeds: [1, 1]\nruns: [{name: a}]\n", r"repeated seed"),
        ("name: g\njobs: 0\nruns: [{name: a}]\n", r"jobs must be an integer >= 1"),
        ("name: g\nruns: [{name: a, epochs: 0}]\n", r"epochs must be >= 1"),
        ("name: g\nruns: [{name: a, config: missing.yaml}]\n", r"config file not found: .*missing.yaml"),
        ("- name: a\n", r"expected a mapping"),
        ("name: g\nruns: [{name: a\n", r"invalid YAML"),
    ],
)
def test_grid_validation_errors(tmp_path, text, match):
    path = write_grid(tmp_path, text)
    with pytest.raises(ConfigError, match=match):
        experiment.load_grid(path)


def test_grid_error_through_the_cli(tmp_path, capsys):
    path = write_grid(tmp_path, "name: g\nruns:\n  - name: a\n    hiden: 3\n")
    assert cli(["experiment", str(path)]) == 1
    err = capsys.readouterr().err
    assert "searnn experiment: error:" in err and "did you mean hidden" in err
    assert not (tmp_path / "runs").exists()


def test_options_merge_sections_config_files_and_defaults(tmp_path):
    (tmp_path / "base.yaml").write_text("model:\n  hidden: 24\ntrain:\n  lr: 0.005\n")
    (tmp_path / "row.yaml").write_text("emb-dim: 12\nlr: 0.007\n")
    path = write_grid(tmp_path, f"""\
name: merge
out: {tmp_path / 'out'}
base:
  config: base.yaml
  epochs: 3
runs:
  - name: plain
  - name: fancy
    config: row.yaml
    model: {{tgt_emb_dim: 9}}
    lr: 0.02
    threads: 2
""")
    grid = experiment.load_grid(path)
    assert grid.rows == ["plain", "fancy"] and [r.seed for r in grid.runs] == [1, 1]
    plain, fancy = (r.config for r in grid.runs)
    assert plain.model.hidden == 24 and plain.train.lr == 0.005 and plain.train.epochs == 3
    assert plain.train.threads == 1 and plain.train.progress is False
    assert fancy.model.emb_dim == 12 and fancy.model.tgt_emb_dim == 9 and fancy.train.lr == 0.02
    assert fancy.train.threads == 2
    assert grid.runs[1].run_dir == tmp_path / "out" / "fancy" / "seed1"
    assert fancy.train.run_dir == str(tmp_path / "out" / "fancy" / "seed1")


def test_rows_share_options_through_yaml_merge_keys(tmp_path):
    """README: rows whose objectives differ share a block through an anchor and `<<:`; a row's own keys win."""
    path = write_grid(tmp_path, f"""\
name: anchors
out: {tmp_path / 'out'}
base:
  task: ocr
runs:
  - &s
    name: kl50
    objective: searnn
    rollin: reference
    kl_scale: 50
  - {{<<: *s, name: kl200, kl_scale: 200}}
  - {{name: mle, objective: mle}}
""")
    grid = experiment.load_grid(path)
    assert grid.rows == ["kl50", "kl200", "mle"]
    kl50, kl200, mle = (r.options for r in grid.runs)
    assert kl200["objective"] == "searnn" and kl200["rollin"] == "reference"
    assert (kl50["kl_scale"], kl200["kl_scale"]) == (50, 200)
    assert mle["objective"] == "mle" and "rollin" not in mle


def test_seed_field_in_string_options(tmp_path):
    path = write_grid(tmp_path, f"""\
name: ws
out: {tmp_path / 'out'}
seeds: [1, 3]
base:
  warm_start: runs/mle/seed{{seed}}
runs:
  - name: a
  - name: b
    warm_start: ckpt-{{seed}}/best.pt
    seeds: [2]
""")
    grid = experiment.load_grid(path)
    starts = [(r.row, r.seed, r.config.train.warm_start) for r in grid.runs]
    assert starts == [("a", 1, "runs/mle/seed1"), ("a", 3, "runs/mle/seed3"), ("b", 2, "ckpt-2/best.pt")]
    assert grid.runs[0].config.train.run_dir == str(tmp_path / "out" / "a" / "seed1")


def test_default_out_and_overrides(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write_grid(tmp_path, "name: g\njobs: 3\nruns: [{name: a}]\n")
    grid = experiment.load_grid(path)
    assert grid.out == Path("runs/g") and grid.jobs == 3
    grid = experiment.load_grid(path, out="elsewhere", jobs=1)
    assert grid.out == Path("elsewhere") and grid.jobs == 1 and grid.runs[0].run_dir == Path("elsewhere/a/seed1")


def test_dry_run_plans_without_writing(tmp_path, capsys):
    out = tmp_path / "out"
    assert cli(["experiment", str(SMOKE), "--out", str(out), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "2 rows, 4 runs (0 done, 0 to resume, 4 new)" in text
    assert "mle-lr1e-2/seed2  new" in text and "searnn.cli train --config" in text
    assert not out.exists()


def test_changed_row_options_are_refused_before_launch(tmp_path, fake_train):
    path = write_grid(tmp_path, GRID.format(out=tmp_path / "out"))
    grid = experiment.load_grid(path)
    run = grid.runs[0]
    run.run_dir.mkdir(parents=True)
    changed = dict(run.options, lr=0.3)
    build_config(changed).save(run.run_dir / "config.yaml")
    with pytest.raises(ConfigError, match=r"a/seed1 \(row 'a', seed 1\) holds a run with a different config "
                                          r"\(lr: saved 0.3, now 0.01\)"):
        experiment.load_grid(path)
    # options a resumed run may change (epochs, threads, ...) are fine: that run is resumed
    build_config(dict(run.options, epochs=1, threads=2)).save(run.run_dir / "config.yaml")
    assert experiment.load_grid(path).runs[0].status == "resume"


def test_a_finished_run_without_the_requested_beam_test_is_resumed(tmp_path):
    out = tmp_path / "out"
    grid = experiment.load_grid(write_grid(tmp_path, GRID.format(out=out)))
    run = grid.runs[0]
    run.run_dir.mkdir(parents=True)
    build_config(run.options).save(run.run_dir / "config.yaml")
    results = {"task": "ocr", "objective": "mle", "metric": "cer", "valid": {"cer": 1.0}, "test": {"cer": 1.0},
               "epochs": 2}
    (run.run_dir / "results.json").write_text(json.dumps(results))
    assert experiment.load_grid(tmp_path / "grid.yaml").runs[0].status == "done"
    beam_grid = write_grid(tmp_path, GRID.format(out=out).replace("  hidden: 8\n", "  hidden: 8\n  test_beam: 2\n"),
                           name="beam.yaml")
    assert experiment.load_grid(beam_grid).runs[0].status == "resume"
    results["test_beam"] = {"beam": 2, "valid_by_len_norm": {str(c): 1.0 for c in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)}}
    (run.run_dir / "results.json").write_text(json.dumps(results))
    assert experiment.load_grid(beam_grid).runs[0].status == "done"


# --------------------------------------------------------------------------------------------- running (fake)


def test_fake_grid_runs_aggregates_and_skips(tmp_path, fake_train, capsys):
    out = tmp_path / "out"
    path = write_grid(tmp_path, GRID.format(out=out))
    assert cli(["experiment", str(path)]) == 0
    printed = capsys.readouterr().out
    data = json.loads((out / "results.json").read_text())
    a, b = data["rows"]
    assert (a["label"], a["n"], a["seeds"]) == ("a", 2, [1, 2])
    assert a["valid"]["values"] == [2.0, 3.0] and a["valid"]["mean"] == 2.5
    assert a["valid"]["std"] == pytest.approx(statistics.stdev([2.0, 3.0]))
    assert b["valid"]["mean"] == pytest.approx(4.0) and b["valid"]["std"] == pytest.approx(1.0)
    assert b["test"]["mean"] == pytest.approx(5.0) and b["train_seconds"]["total"] == pytest.approx(6.0)
    table = (out / "results.md").read_text()
    assert table.startswith("# fake\n") and table in printed + "\n"
    assert "| a | ocr | mle | cer ↓ | **2.50 ± 0.71** | **3.50 ± 0.71** | 2 | 1 | 2 | 0.50 | 4.0s |" in table
    assert "| b | ocr | mle | cer ↓ | 4.00 ± 1.00 | 5.00 ± 1.00 | 3 |" in table
    assert (out / "grid.yaml").read_text() == path.read_text()
    run_dir = out / "b" / "seed3"
    for name in ("options.yaml", "grid_run.json", "train.log", "results.json"):
        assert (run_dir / name).is_file(), name
    assert yaml.safe_load((run_dir / "options.yaml").read_text())["seed"] == 3
    assert json.loads((run_dir / "grid_run.json").read_text())["row"] == "b"
    assert "fake training" in (run_dir / "train.log").read_text()

    before = mtimes(out)
    assert len(before) == 5
    assert cli(["experiment", str(path)]) == 0
    assert "5 of 5 runs already finished (skipped)" in capsys.readouterr().out
    assert mtimes(out) == before
    assert (run_dir / "train.log").read_text().count("=== searnn experiment") == 1
    assert json.loads((out / "results.json").read_text())["rows"] == data["rows"]


def test_failures_are_reported_with_their_log(tmp_path, fake_train, capsys):
    out = tmp_path / "out"
    path = write_grid(tmp_path, GRID.format(out=out).replace("lr: 0.02", "lr: 0.5"))
    assert cli(["experiment", str(path)]) == 1
    captured = capsys.readouterr()
    assert "3 of 5 runs failed" in captured.err
    assert f"log: {out / 'b' / 'seed2' / 'train.log'}" in captured.err
    assert "exit status 3: boom: this run fails" in captured.err
    table = (out / "results.md").read_text()
    assert "| b | ocr | mle | — | — | — | 0/3 |" in table and "Missing (3): b/seed1, b/seed2, b/seed3" in table
    data = json.loads((out / "results.json").read_text())
    assert len(data["failed"]) == 3 and data["rows"][0]["n"] == 2
    # fixing the cause and running again trains only the failed runs
    before = mtimes(out)
    path.write_text(GRID.format(out=out))
    assert cli(["experiment", str(path)]) == 0
    after = mtimes(out)
    assert {k: after[k] for k in before} == before and len(after) == 5


def test_a_run_taken_by_another_grid_as_it_starts_is_waited_for_not_failed(tmp_path, fake_train, capsys):
    """Two grids on one out dir: the other one's trainer may lock a run between this grid's lock check and its
    trainer's start. The trainer then exits with the lock error; the grid waits for the holder and resumes
    the run (here the holder ends without finishing it) instead of reporting a failure."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "RACE").touch()
    path = write_grid(tmp_path, GRID.format(out=out).replace("seeds: [1, 2, 3]", "seeds: [1]"))
    assert cli(["experiment", str(path), "--jobs", "1"]) == 0
    text = capsys.readouterr().out
    assert "took it as this grid started it" in text and "is free again: resuming it" in text
    assert "FAILED" not in text and len(mtimes(out)) == 3


def test_interrupted_fake_grid_stops_children_and_resumes(tmp_path, fake_train, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "HANG").touch()
    path = write_grid(tmp_path, GRID.format(out=out).replace("  - name: b\n", "  - name: b\n    hidden: 7\n"))
    hang_log = out / "b" / "seed1" / "train.log"

    def terminate_when_hanging() -> None:
        deadline = time.monotonic() + 30
        while not (hang_log.exists() and (hang_log.parent / "pid").exists()) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGTERM)

    handler = signal.getsignal(signal.SIGTERM)
    timer = threading.Thread(target=terminate_when_hanging)
    timer.start()
    start = time.monotonic()
    assert cli(["experiment", str(path), "--jobs", "1"]) == 130
    timer.join()
    assert time.monotonic() - start < 30
    assert "interrupted: stopping 1 running run(s)" in capsys.readouterr().out
    assert (hang_log.parent / "stopped").exists(), "the trainer was killed instead of asked to checkpoint"
    pid = int((hang_log.parent / "pid").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert signal.getsignal(signal.SIGTERM) == handler and not (hang_log.parent / "results.json").exists()
    finished = mtimes(out)
    assert set(finished) == {"a/seed1/results.json", "a/seed2/results.json"}
    (out / "HANG").unlink()
    assert cli(["experiment", str(path), "--jobs", "2"]) == 0
    assert "2 of 5 runs already finished" in capsys.readouterr().out
    after = mtimes(out)
    assert len(after) == 5 and {k: after[k] for k in finished} == finished


# --------------------------------------------------------------------------------------------- report


def fake_run(run_dir: Path, objective: str, seed: int, valid: float, test: float, *, marker_row: str | None = None,
             epochs: int = 3, metric: str = "cer") -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    results = {"task": "ocr", "objective": objective, "metric": metric, "lower_is_better": metric == "cer",
               "valid": {metric: valid}, "test": {metric: test}, "best_epoch": epochs - 1, "epochs": epochs,
               "seconds_per_epoch": 2.0, "train_seconds": 2.0 * epochs, "seed": seed}
    (run_dir / "results.json").write_text(json.dumps(results))
    records = [{"epoch": e + 1, f"valid_{metric}": valid + epochs - e - 1, "train_seconds": 2.0 * (e + 1)}
               for e in range(epochs)]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    if marker_row:
        (run_dir / report.RUN_MARKER).write_text(json.dumps({"row": marker_row, "seed": seed}))
    return run_dir


def test_report_groups_rows_and_objectives(tmp_path, capsys):
    root = tmp_path / "runs"
    fake_run(root / "mle" / "seed1", "mle", 1, 10.0, 11.0)
    fake_run(root / "mle" / "seed2", "mle", 2, 12.0, 13.0)
    fake_run(root / "mle" / "seed3", "mle", 3, 14.0, 12.0)
    fake_run(root / "kl-big", "searnn", 1, 8.0, 9.0)
    fake_run(root / "grid" / "whatever" / "seed1", "searnn", 2, 6.0, 7.0, marker_row="kl-small")
    (root / "results.json").write_text(json.dumps({"name": "agg", "rows": []}))  # a grid aggregate: ignored
    (root / "pending").mkdir()
    (root / "pending" / "config.yaml").write_text("train: {task: ocr}\n")
    (root / "pending" / "metrics.jsonl").write_text("")

    assert cli(["report", str(root), "--out", str(tmp_path / "t.md")]) == 0
    printed = capsys.readouterr().out
    lines = [ln for ln in printed.splitlines() if ln.startswith("| ")]
    labels = {ln.split(" | ")[0][2:]: ln for ln in lines[2:]}
    assert list(labels) == ["kl-small", "kl-big", "mle"]
    std = statistics.stdev([10.0, 12.0, 14.0])
    assert f"| 12.00 ± {std:.2f} | 12.00 ± 1.00 | 3 | 2 | 3 | 2.00 | 18.0s |" in labels["mle"]
    assert "| **6.00** | **7.00** | 1 |" in labels["kl-small"]
    assert "1 unfinished run(s) left out" in printed and str(root / "pending") in printed
    assert (tmp_path / "t.md").read_text().strip() == printed.strip()

    assert cli(["report", str(root), "--group-by", "objective", "--out", str(tmp_path / "t.json")]) == 0
    data = json.loads((tmp_path / "t.json").read_text())
    rows = {r["label"]: r for r in data["rows"]}
    assert set(rows) == {"mle", "searnn"} and rows["searnn"]["n"] == 2
    assert rows["searnn"]["valid"]["mean"] == pytest.approx(7.0)
    assert rows["searnn"]["valid"]["std"] == pytest.approx(statistics.stdev([8.0, 6.0]))
    assert rows["mle"]["seeds"] == [1, 2, 3] and data["unfinished"] == [str(root / "pending")]
    header = capsys.readouterr().out.splitlines()[0]
    assert header.startswith("| objective | task | metric |")


def test_report_higher_is_better_and_tasks_apart(tmp_path):
    a = report.load_result(fake_run(tmp_path / "a", "mle", 1, 30.0, 31.0, metric="bleu"))
    b = report.load_result(fake_run(tmp_path / "b", "mle", 1, 32.0, 29.0, metric="bleu"))
    c = report.load_result(fake_run(tmp_path / "c", "mle", 1, 5.0, 5.0))
    groups = report.group_runs([a, b, c], "objective")
    assert [(g.label, g.metric, len(g.runs)) for g in groups] == [("mle", "bleu", 2), ("mle", "cer", 1)]
    table = report.markdown_table(report.group_runs([a, b, c], "row"))
    assert "| b | ocr | mle | bleu ↑ | **32.00** | 29.00 |" in table
    assert "| a | ocr | mle | bleu ↑ | 30.00 | **31.00** |" in table
    assert "| c | ocr | mle | cer ↓ | 5.00 | 5.00 |" in table  # alone for its metric: not bold


def test_report_errors(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        report.find_run_dirs([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no run directory with a results.json"):
        report.find_run_dirs([tmp_path / "empty"])
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "results.json").write_text("{not json")
    with pytest.raises(DataError, match=r"bad/results.json: invalid JSON \(line 1"):
        report.find_run_dirs([tmp_path / "bad"])


def test_stat_and_formatting():
    s = report.Stat.of([1.0, None, 2.0, 4.0])
    assert s.n == 3 and s.mean == pytest.approx(7 / 3) and s.std == pytest.approx(statistics.stdev([1, 2, 4]))
    assert report.Stat.of([3.0]).std is None and report.Stat.of([]).mean is None
    assert report.format_mean_std(report.Stat([3.0])) == "3.00"
    assert report.format_seconds(12.34) == "12.3s" and report.format_seconds(245) == "4m05s"
    assert report.format_seconds(7380) == "2h03m" and report.format_seconds(None) == "—"


# --------------------------------------------------------------------------------------------- real training


def _metric_rows(out: Path) -> list[dict]:
    rows = json.loads((out / "results.json").read_text())["rows"]
    keep = ("label", "task", "objective", "metric", "n", "seeds", "valid", "test", "best_epoch", "epochs")
    return [{k: r[k] for k in keep} for r in rows]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("grid") / "straight"
    rc = cli(["experiment", str(SMOKE), "--out", str(out), "--jobs", "2"])
    return rc, out


@pytest.mark.slow
def test_tiny_grid_trains_and_aggregates(uninterrupted, capsys):
    rc, out = uninterrupted
    assert rc == 0
    rows = _metric_rows(out)
    assert [r["label"] for r in rows] == ["mle-lr1e-3", "mle-lr1e-2"]
    for r in rows:
        assert r["n"] == 2 and r["seeds"] == [1, 2] and r["metric"] == "cer" and r["epochs"]["values"] == [2, 2]
        assert 0 <= r["test"]["mean"] <= 100 and r["valid"]["std"] is not None
    for run in out.glob("*/seed*"):
        log = (run / "train.log").read_text()
        assert "best epoch" in log and (run / "best.pt").exists()
    before = mtimes(out)
    assert cli(["experiment", str(SMOKE), "--out", str(out)]) == 0
    assert "4 of 4 runs already finished" in capsys.readouterr().out
    assert mtimes(out) == before
    assert cli(["report", str(out)]) == 0
    assert "| mle-lr1e-2 | ocr | mle | cer ↓ |" in capsys.readouterr().out


@pytest.mark.slow
def test_interrupted_grid_finishes_like_an_uninterrupted_one(uninterrupted, tmp_path):
    rc, straight = uninterrupted
    assert rc == 0
    out = tmp_path / "interrupted"
    cmd = [sys.executable, "-m", "searnn.cli", "experiment", str(SMOKE), "--out", str(out), "--jobs", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    first, second, third = out / "mle-lr1e-3" / "seed1", out / "mle-lr1e-3" / "seed2", out / "mle-lr1e-2" / "seed1"
    deadline = time.monotonic() + 300
    while not ((first / "results.json").exists() and (second / "results.json").exists()
               and (third / "train.log").exists()):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0]
        time.sleep(0.1)
    time.sleep(2.0)  # let the third run get into its training, then kill the grid
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == 130, output
    assert "interrupted" in output and not (third / "results.json").exists()
    # the second run is made to look interrupted after its last checkpoint, before its results.json
    (second / "results.json").unlink()
    last_pt = (second / "last.pt").stat().st_mtime_ns
    finished = mtimes(out)
    assert set(finished) == {"mle-lr1e-3/seed1/results.json"}
    assert cli(["experiment", str(SMOKE), "--out", str(out), "--jobs", "2"]) == 0
    after = mtimes(out)
    assert len(after) == 4 and after["mle-lr1e-3/seed1/results.json"] == finished["mle-lr1e-3/seed1/results.json"]
    assert (second / "last.pt").stat().st_mtime_ns == last_pt  # not retrained: only evaluated again
    assert _metric_rows(out) == _metric_rows(straight)


def test_report_and_plot_keep_the_grid_row_order(tmp_path, fake_train, capsys):
    out = tmp_path / "out"
    text = GRID.format(out=out).replace("name: a\n", "name: zeta\n").replace("name: b\n", "name: alpha\n")
    assert cli(["experiment", str(write_grid(tmp_path, text))]) == 0
    capsys.readouterr()
    assert cli(["report", str(out)]) == 0
    rows = [ln.split(" | ")[0] for ln in capsys.readouterr().out.splitlines() if ln.startswith("| ")][2:]
    assert rows == ["| zeta", "| alpha"]
    assert report.grid_row_order([out]) == ["zeta", "alpha"]


# --------------------------------------------------------------------------------------------- orphans (C7)

DRIVER = r'''
import sys
from searnn import experiment, launch
fake, grid = sys.argv[1], sys.argv[2]
launch.train_command = lambda options: [sys.executable, fake, str(options)]
sys.exit(experiment.main([grid, "--jobs", "1"]))
'''


def _gone(pid: int) -> bool:
    """Whether ``pid`` no longer runs (a zombie waiting for a reaper counts as gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False
    return any(line.startswith("State:") and "Z" in line.split()[1] for line in status.splitlines())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
def test_kill_9_of_the_driver_takes_its_trainers_along(tmp_path, fake_train):
    out = tmp_path / "out"
    out.mkdir()
    (out / "HANG").touch()
    grid = write_grid(tmp_path, GRID.format(out=out).replace("  hidden: 8\n", "  hidden: 7\n"))
    driver_script = tmp_path / "driver.py"
    driver_script.write_text(DRIVER)
    driver = subprocess.Popen([sys.executable, str(driver_script), str(fake_train), str(grid)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pid_file = out / "a" / "seed1" / "pid"
    try:
        deadline = time.monotonic() + 60
        while not pid_file.exists():
            assert driver.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        trainer = int(pid_file.read_text())
        assert not _gone(trainer)
    finally:
        driver.kill()  # SIGKILL: the driver cannot stop its children itself
        driver.wait()
    deadline = time.monotonic() + 20
    while not _gone(trainer) and time.monotonic() < deadline:
        time.sleep(0.05)
    if not _gone(trainer):
        os.kill(trainer, signal.SIGKILL)
        pytest.fail("the trainer outlived its killed driver")


def test_a_run_locked_by_a_live_trainer_is_waited_for_not_failed(tmp_path, fake_train):
    out = tmp_path / "out"
    grid = experiment.load_grid(write_grid(tmp_path, GRID.format(out=out)))
    busy = out / "a" / "seed1"
    release = tmp_path / "release"
    code = ("import sys, time; from pathlib import Path; from searnn.checkpoint import acquire_lock; "
            "acquire_lock(Path(sys.argv[1])); print('locked', flush=True)\n"
            "while not Path(sys.argv[2]).exists(): time.sleep(0.02)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(busy), str(release)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    lines: list[str] = []

    def echo(line: str) -> None:
        lines.append(line)
        if line.startswith("waiting for a/seed1"):
            release.touch()  # the other trainer ends once the grid has noticed it

    try:
        failures = experiment.launch(grid, 2, echo=echo, poll_seconds=0.05)
    finally:
        release.touch()
        holder.wait(30)
    assert failures == []
    assert any(f"process {holder.pid}" in ln for ln in lines if ln.startswith("waiting for a/seed1")), lines
    assert "a/seed1 is free again: resuming it" in lines
    assert all((r.run_dir / "results.json").exists() for r in grid.runs)


# --------------------------------------------------------------------------------------------- durable grid files (C5)


def test_grid_files_are_written_through_the_atomic_helper(tmp_path, fake_train, monkeypatch, capsys):
    from searnn import fileio

    written: list[str] = []
    real = fileio.atomic_write_text

    def spy(text: str, path: Path) -> None:
        written.append(str(Path(path).relative_to(tmp_path / "out")))
        real(text, path)

    monkeypatch.setattr(experiment, "atomic_write_text", spy)  # grid.yaml, results.md, results.json
    monkeypatch.setattr(launch, "atomic_write_text", spy)  # each run's options.yaml and grid_run.json
    out = tmp_path / "out"
    assert cli(["experiment", str(write_grid(tmp_path, GRID.format(out=out)))]) == 0
    for name in ("grid.yaml", "results.md", "results.json", "a/seed1/options.yaml", "a/seed1/grid_run.json",
                 "b/seed3/options.yaml", "b/seed3/grid_run.json"):
        assert name in written, name
    capsys.readouterr()
    # a corrupt results.json of one run: a warning naming it, that run left out of the table, no traceback
    (out / "a" / "seed1" / "results.json").write_text('{"task": "oc')
    grid = experiment.load_grid(tmp_path / "grid.yaml")
    experiment.write_results(grid, [])
    assert f"{out / 'a' / 'seed1' / 'results.json'}: invalid JSON" in capsys.readouterr().err
    rows = {r["label"]: r for r in json.loads((out / "results.json").read_text())["rows"]}
    assert rows["a"]["n"] == 1 and rows["b"]["n"] == 3


def test_dry_run_shows_runs_being_trained_by_another_process(tmp_path, capsys):
    from searnn.checkpoint import acquire_lock, release_lock

    out = tmp_path / "out"
    path = write_grid(tmp_path, GRID.format(out=out))
    lock = acquire_lock(out / "b" / "seed2")  # this process plays the other trainer
    try:
        assert cli(["experiment", str(path), "--dry-run"]) == 0
    finally:
        release_lock(lock)
    lines = capsys.readouterr().out.splitlines()
    busy = [ln for ln in lines if "being trained by process" in ln]
    assert len(busy) == 1 and "b/seed2" in busy[0] and f"process {os.getpid()}" in busy[0]


DEPENDENT_TRAIN = r'''
import json, sys, time
from pathlib import Path
import yaml

opts = yaml.safe_load(Path(sys.argv[1]).read_text())
run_dir = Path(opts["run_dir"])
if opts.get("warm_start"):
    if not (Path(opts["warm_start"]) / "best.pt").exists():
        print("warm start missing", flush=True)
        sys.exit(4)
else:
    time.sleep(1.0)
    if opts["lr"] == 0.5:
        sys.exit(3)
    (run_dir / "best.pt").write_text("x")
results = {"task": "ocr", "objective": "mle", "metric": "cer", "lower_is_better": True, "valid": {"cer": 1.0},
           "test": {"cer": 2.0}, "best_epoch": 1, "epochs": 1, "seed": opts["seed"]}
(run_dir / "results.json").write_text(json.dumps(results))
'''

DEPENDENT_GRID = """\
name: dep
out: {out}
jobs: 3
seeds: [1, 2]
base: {{task: ocr, epochs: 1, lr: {lr}}}
runs:
  - name: finetune
    warm_start: {out}/base/seed{{seed}}
  - name: base
"""


@pytest.mark.parametrize("lr", [0.1, 0.5])
def test_a_run_warm_starting_from_another_row_waits_for_it(tmp_path, monkeypatch, lr):
    """The fine-tuning row is listed first and jobs allow every run at once, yet each fine-tuning run starts
    only after the base run it warm-starts from has finished; when that one fails, it is not started."""
    script = tmp_path / "dep_train.py"
    script.write_text(DEPENDENT_TRAIN)
    monkeypatch.setattr(launch, "train_command", lambda options: [sys.executable, str(script), str(options)])
    out = tmp_path / "runs"
    grid = experiment.load_grid(write_grid(tmp_path, DEPENDENT_GRID.format(out=out, lr=lr)))
    lines: list[str] = []
    failures = experiment.launch(grid, grid.jobs, echo=lines.append, poll_seconds=0.05)
    if lr == 0.1:
        assert failures == [], lines
        assert all((out / row / f"seed{k}" / "results.json").exists() for row in ("base", "finetune") for k in (1, 2))
    else:
        assert sorted(f.run.label for f in failures) == ["base/seed1", "base/seed2", "finetune/seed1",
                                                         "finetune/seed2"]
        assert any("not started: its warm start base/seed1 failed" in f.reason for f in failures)
        assert not (out / "finetune" / "seed1" / "train.log").exists()


@pytest.mark.parametrize("grid_file", sorted((REPO / "configs" / "experiments").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_every_shipped_grid_loads(grid_file):
    grid = experiment.load_grid(grid_file)  # every row's options are validated as `searnn train` would
    assert grid.rows and grid.name == grid_file.stem
