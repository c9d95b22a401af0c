"""Provenance: results.json and metrics.jsonl name the code that made them; report warns on mixed versions."""

import json
import subprocess
from pathlib import Path

import torch

import searnn
from searnn import report
from searnn.config import build_config
from searnn.provenance import code_version, git_version, short_version
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
