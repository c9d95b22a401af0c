"""`searnn experiment --archive` (finished runs' records without checkpoints) and `--only` (part of a grid).

The grids here use the fake trainer of test_experiment.py; one test trains a real tiny OCR run and deletes
its checkpoints, as an archive copied back leaves it.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from searnn.archive import is_record
from searnn.cli import main as cli
from searnn.errors import SearnnError
from searnn.grid import load_grid
from searnn.train import run
from test_experiment import GRID, fake_train, write_grid  # noqa: F401  (fake_train: the fixture, used by name)
from test_train import small

CHECKPOINT_FILES = ("best.pt", "last.pt", "last.prev.pt", "vocab.json", "train.lock")


def finished_grid(tmp_path: Path) -> tuple[Path, Path]:
    """The fake grid of test_experiment.py, run, with checkpoint-like files beside each run's records."""
    out = tmp_path / "runs"
    path = write_grid(tmp_path, GRID.format(out=out))
    assert cli(["experiment", str(path)]) == 0
    for run_dir in out.glob("*/seed*"):
        for name in CHECKPOINT_FILES:
            (run_dir / name).write_bytes(b"weights")
        (run_dir / "test_hyps.txt").write_text("a b c\n")
    return path, out


def test_is_record():
    for name in ("results.json", "config.yaml", "options.yaml", "metrics.jsonl", "grid_run.json",
                 "test_hyps.txt", "test_beam_hyps.txt", "train.log"):
        assert is_record(Path(name)), name
    for name in CHECKPOINT_FILES + ("vocab_src.json",):
        assert not is_record(Path(name)), name


@pytest.mark.usefixtures("fake_train")
def test_archive_copies_finished_records_and_restores_as_done(tmp_path, capsys):
    path, out = finished_grid(tmp_path)
    (out / "b" / "seed3" / "results.json").unlink()  # b/seed3 looks interrupted: not archived
    capsys.readouterr()
    archive = tmp_path / "archive"
    assert cli(["experiment", str(path), "--archive", str(archive)]) == 0
    printed = capsys.readouterr().out
    assert "archived 4 finished runs" in printed and "not archived: b/seed3 (not finished: new)" in printed
    assert sorted(str(p.relative_to(archive)) for p in archive.glob("*/seed*")) == [
        "a/seed1", "a/seed2", "b/seed1", "b/seed2"]
    for run_dir in archive.glob("*/seed*"):
        names = {p.name for p in run_dir.iterdir()}
        assert not names & set(CHECKPOINT_FILES), names
        assert {"results.json", "options.yaml", "metrics.jsonl", "grid_run.json",
                "test_hyps.txt"} <= names
        original = out / run_dir.relative_to(archive)
        assert (run_dir / "results.json").read_bytes() == (original / "results.json").read_bytes()
    assert (archive / "grid.yaml").exists() and (archive / "results.md").exists()
    # searnn report reads the archive as it reads the runs
    capsys.readouterr()
    assert cli(["report", str(archive)]) == 0
    table = capsys.readouterr().out
    assert "| a | ocr | mle | cer ↓ |" in table and "| b | ocr | mle | cer ↓ |" in table
    # copied back on a fresh machine: the archived runs are done, the others still to train
    fresh = tmp_path / "fresh"
    shutil.copytree(archive, fresh)
    grid = load_grid(path, out=str(fresh))
    assert {r.label: r.status for r in grid.runs} == {
        "a/seed1": "done", "a/seed2": "done", "b/seed1": "done", "b/seed2": "done", "b/seed3": "new"}
    # archiving again replaces each run's copy (a file gone from the run is gone from the archive)
    (out / "a" / "seed1" / "test_hyps.txt").unlink()
    assert cli(["experiment", str(path), "--archive", str(archive)]) == 0
    assert not (archive / "a" / "seed1" / "test_hyps.txt").exists()


def test_archive_before_any_run_finished(tmp_path, capsys):
    """A grid just started (its out dir holds only grid.yaml): the archive is made, with no runs in it."""
    out = tmp_path / "runs"
    path = write_grid(tmp_path, GRID.format(out=out))
    out.mkdir()
    (out / "grid.yaml").write_text(path.read_text())
    archive = tmp_path / "results" / "archive"
    assert cli(["experiment", str(path), "--archive", str(archive)]) == 0
    printed = capsys.readouterr().out
    assert "archived 0 finished runs" in printed and "not archived: a/seed1 (not finished: new)" in printed
    assert (archive / "grid.yaml").read_text() == path.read_text()
    assert not list(archive.glob("*/seed*"))


@pytest.mark.usefixtures("fake_train")
def test_archive_refuses_the_out_dir_and_other_flags(tmp_path, capsys):
    path, out = finished_grid(tmp_path)
    capsys.readouterr()
    assert cli(["experiment", str(path), "--archive", str(out)]) == 1
    assert "that is the grid's out directory" in capsys.readouterr().err
    assert cli(["experiment", str(path), "--archive", str(tmp_path / "x"), "--dry-run"]) == 1
    assert "launches nothing" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def _launched(out: Path) -> list[str]:
    return sorted(str(p.parent.relative_to(out)) for p in out.glob("*/seed*/results.json"))


@pytest.mark.usefixtures("fake_train")
def test_only_launches_the_named_runs_in_order(tmp_path, capsys):
    out = tmp_path / "runs"
    path = write_grid(tmp_path, GRID.format(out=out).replace("jobs: 2", "jobs: 1"))
    assert cli(["experiment", str(path), "--only", "b/seed3, a"]) == 0
    printed = capsys.readouterr().out
    assert _launched(out) == ["a/seed1", "a/seed2", "b/seed3"]
    starts = [line.split("starting ")[1].split()[0] for line in printed.splitlines() if "starting " in line]
    assert starts == ["b/seed3", "a/seed1", "a/seed2"]
    assert "| a |" in printed and "| b |" in printed  # the table covers every finished run of the grid
    assert cli(["experiment", str(path), "--only", "b/2", "--dry-run"]) == 0
    plan = capsys.readouterr().out
    assert "1 runs (0 done, 0 to resume, 1 new)" in plan and "b/seed2" in plan and "a/seed1" not in plan
    assert cli(["experiment", str(path), "--only", "b"]) == 0
    assert _launched(out) == ["a/seed1", "a/seed2", "b/seed1", "b/seed2", "b/seed3"]


@pytest.mark.parametrize("only, match", [
    ("c", r"no row 'c' .*\(rows: a, b\)"),
    ("a/seed3", r"row 'a' has no 'seed3' \(its seeds: seed1, seed2\)"),
    (" , ", "names no run"),
])
def test_only_errors(tmp_path, only, match, capsys):
    path = write_grid(tmp_path, GRID.format(out=tmp_path / "runs"))
    assert cli(["experiment", str(path), "--only", only, "--dry-run"]) == 1
    assert re.search(match, capsys.readouterr().err)


def test_a_run_without_checkpoints_is_not_retrained(tmp_path):
    """A finished run copied back without its checkpoints prints its results; asked for more, it refuses
    (it cannot go on, and training it again from scratch in place would hide that)."""
    first = run(small(tmp_path, epochs=1))
    run_dir = tmp_path / "run"
    for name in CHECKPOINT_FILES:
        (run_dir / name).unlink(missing_ok=True)
    records = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    again = run(small(tmp_path, epochs=1))
    assert again["test"] == first["test"]
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.name != "train.log"} == {
        k: v for k, v in records.items() if k != "train.log"}
    with pytest.raises(SearnnError, match="no checkpoint .*last.pt.* delete that directory"):
        run(small(tmp_path, epochs=2))
    assert json.loads((run_dir / "results.json").read_text())["epochs"] == 1
    assert (run_dir / "config.yaml").read_bytes() == records["config.yaml"]
