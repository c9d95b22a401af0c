"""Provenance: results.json and metrics.jsonl name the code that made them; report warns on mixed versions."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

import searnn
from searnn import report
from searnn.config import build_config
from searnn.provenance import (
    REPORTING_MODULES,
    code_version,
    git_version,
    short_version,
    training_code_at,
    training_code_digest,
)
from searnn.train import run

SMALL = {"task": "ocr", "limit_train": 64, "limit_valid": 16, "epochs": 1, "batch_size": 32, "hidden": 8,
         "emb_dim": 8, "tgt_emb_dim": 8, "progress": False, "checkpoint_minutes": 0.0}


def _git_head() -> str | None:
    src = Path(searnn.__file__).resolve().parent
    out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=src, capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else None


def test_code_version_names_commit_torch_and_device():
    info = code_version("cpu")
    assert info["torch_version"] == torch.__version__ and info["searnn_version"] == searnn.__version__
    assert info["device"] == "cpu"
    assert isinstance(info["hardware"], str) and info["hardware"] and info["hardware"] != "cpu"
    commit, dirty = git_version()
    assert info["git_commit"] == commit == _git_head()  # this test suite runs from a checkout
    assert isinstance(dirty, bool)
    assert short_version(info).startswith(commit[:7])


def test_short_version_without_checkout():
    info = {"searnn_version": "0.1.0", "git_commit": None, "git_dirty": None, "torch_version": "2.13.0"}
    assert short_version(info) == "v0.1.0 torch 2.13.0"
    assert short_version({**info, "git_commit": "abcdef0123", "git_dirty": True}) == "abcdef0+dirty torch 2.13.0"


def test_results_and_metrics_record_the_code(tmp_path):
    run(build_config(dict(SMALL, run_dir=str(tmp_path / "r"))))
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    assert results["code"]["git_commit"] == _git_head()
    assert results["code"]["torch_version"] == torch.__version__
    assert results["trained_with"] == [short_version(results["code"])]
    record = json.loads((tmp_path / "r" / "metrics.jsonl").read_text().splitlines()[0])
    assert record["code"] == results["code"]


def _fake_run(path: Path, seed: int, code: dict | None) -> None:
    path.mkdir(parents=True)
    data = {"task": "ocr", "objective": "mle", "metric": "cer", "lower_is_better": True, "seed": seed,
            "valid": {"cer": 1.0 + seed}, "test": {"cer": 2.0 + seed}, "epochs": 2, "best_epoch": 2,
            "config": {"train": {"seed": seed, "objective": "mle"}}}
    if code is not None:
        data["code"] = code
    (path / "results.json").write_text(json.dumps(data))


def test_report_warns_when_a_table_mixes_versions(tmp_path, capsys):
    base = {"searnn_version": "0.1.0", "git_dirty": False, "torch_version": "2.13.0", "device": "cpu"}
    _fake_run(tmp_path / "row" / "seed1", 1, {**base, "git_commit": "1111111aaaa"})
    _fake_run(tmp_path / "row" / "seed2", 2, {**base, "git_commit": "1111111aaaa"})
    assert report.main([str(tmp_path)]) == 0
    out = capsys.readouterr()
    assert "Code: 1111111 torch 2.13.0." in out.out and "Warning" not in out.err
    assert "Hardware" not in out.out  # not recorded by these runs
    _fake_run(tmp_path / "row" / "seed3", 3, {**base, "git_commit": "2222222bbbb"})
    _fake_run(tmp_path / "row" / "seed4", 4, None)
    assert report.main([str(tmp_path), "--out", str(tmp_path / "t.json")]) == 0
    out = capsys.readouterr()
    assert "mixes 3 code versions" in out.err and "2222222" in out.out and "unknown" in out.out
    rows = json.loads((tmp_path / "t.json").read_text())["rows"]
    assert rows[0]["versions"] == [["1111111 torch 2.13.0"], ["1111111 torch 2.13.0"],
                                   ["2222222 torch 2.13.0"], ["unknown"]]


def test_report_names_the_hardware(tmp_path, capsys):
    base = {"searnn_version": "0.1.0", "git_commit": "1111111aaaa", "git_dirty": False, "torch_version": "2.13.0",
            "device": "cpu"}
    _fake_run(tmp_path / "row" / "seed1", 1, {**base, "hardware": "CPU A"})
    _fake_run(tmp_path / "row" / "seed2", 2, {**base, "hardware": "CPU A"})
    assert report.main([str(tmp_path)]) == 0
    assert "Code: 1111111 torch 2.13.0. Hardware: CPU A." in capsys.readouterr().out
    _fake_run(tmp_path / "row" / "seed3", 3, {**base, "hardware": "CPU B"})
    assert report.main([str(tmp_path)]) == 0
    assert "Hardware: CPU A (2 runs); CPU B (1 run)." in capsys.readouterr().out


def test_training_code_digest_is_the_commit_tree_and_ignores_reporting_modules(tmp_path):
    """The digest read from disk equals the one read from the commit's git tree (blob ids computed by git
    itself), moves when a training module changes and stays when only a reporting module does."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    pkg = tmp_path / "src" / "searnn"
    (pkg / "models").mkdir(parents=True)
    (pkg / "train.py").write_text("LR = 1e-3\n")
    (pkg / "models" / "rnn.py").write_text("HIDDEN = 8\n")
    (pkg / "report.py").write_text("NOTE = 'a'\n")
    (pkg / "notes.txt").write_text("not python\n")

    def commit(message: str) -> str:
        git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(tmp_path)]
        subprocess.run([*git, "add", "-A"], check=True, capture_output=True)
        subprocess.run([*git, "commit", "-qm", message], check=True, capture_output=True)
        return subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True,
                              text=True).stdout.strip()

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True, capture_output=True)
    first = commit("one")
    on_disk = training_code_digest.__wrapped__(pkg)
    assert training_code_at.__wrapped__(first, tmp_path) == on_disk
    assert training_code_at.__wrapped__(first[:7], tmp_path) == on_disk
    assert "report.py" in REPORTING_MODULES and "train.py" not in REPORTING_MODULES
    (pkg / "report.py").write_text("NOTE = 'b'\n")
    (pkg / "notes.txt").write_text("changed\n")
    second = commit("reporting only")
    assert training_code_at.__wrapped__(second, tmp_path) == on_disk == training_code_digest.__wrapped__(pkg)
    (pkg / "models" / "rnn.py").write_text("HIDDEN = 16\n")
    third = commit("training")
    assert training_code_at.__wrapped__(third, tmp_path) != on_disk
    assert training_code_at.__wrapped__(third, tmp_path) == training_code_digest.__wrapped__(pkg)
    assert training_code_at.__wrapped__("0" * 40, tmp_path) is None
    assert training_code_at.__wrapped__("not-a-hash", tmp_path) is None


def test_report_treats_commits_with_the_same_training_code_as_one_version(tmp_path, capsys):
    base = {"searnn_version": "0.1.0", "git_dirty": False, "torch_version": "2.13.0", "device": "cpu"}
    _fake_run(tmp_path / "row" / "seed1", 1, {**base, "git_commit": "1111111aaaa", "training_code": "d1"})
    _fake_run(tmp_path / "row" / "seed2", 2, {**base, "git_commit": "2222222bbbb", "training_code": "d1"})
    assert report.main([str(tmp_path)]) == 0
    out = capsys.readouterr()
    assert "2 commits with the same training code (digest d1" in out.out and "Warning" not in out.err + out.out
    _fake_run(tmp_path / "row" / "seed3", 3, {**base, "git_commit": "3333333cccc", "training_code": "d2"})
    assert report.main([str(tmp_path)]) == 0
    assert "mixes 3 code versions" in capsys.readouterr().err
    shutil.rmtree(tmp_path / "row" / "seed3")
    _fake_run(tmp_path / "row" / "seed3", 3, {**base, "git_commit": "3333333cccc", "training_code": "d1",
                                               "torch_version": "2.14.0"})
    assert report.main([str(tmp_path)]) == 0  # same training code, another torch: still a different version
    assert "mixes 3 code versions" in capsys.readouterr().err


def test_runs_record_the_training_code_digest(tmp_path):
    run(build_config(dict(SMALL, run_dir=str(tmp_path / "r"))))
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    assert results["code"]["training_code"] == training_code_digest()
    head = _git_head()
    if head is not None and not git_version()[1]:  # a clean checkout: the commit's tree gives the same digest
        assert training_code_at(head) == training_code_digest()
