"""The command line: one small run per task, evaluate/predict round trips, clear errors."""

import json
import subprocess
import sys

import pytest

from searnn.cli import main

TINY = ["--epochs", "1", "--hidden", "16", "--emb-dim", "16", "--tgt-emb-dim", "16", "--progress", "false",
        "--limit-valid", "40", "--batch-size", "32"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "searnn.cli", *args], capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize(
    "task,extra",
    [
        ("ocr", ["--limit-train", "64"]),
        ("chunking", ["--limit-train", "64"]),
        ("spelling", ["--limit-train", "64", "--noise", "0.3"]),
        ("translation", ["--limit-train", "64", "--attention", "additive"]),
    ],
)
def test_train_each_task(tmp_path, task, extra, capsys):
    run_dir = tmp_path / task
    code = main(["train", "--task", task, "--objective", "mle", "--run-dir", str(run_dir), *TINY, *extra])
    assert code == 0
    results = json.loads((run_dir / "results.json").read_text())
    assert results["task"] == task and results["epochs"] == 1
    metric = results["metric"]
    assert isinstance(results["test"][metric], float)
    capsys.readouterr()
    assert main(["evaluate", str(run_dir), "--split", "test"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed[metric] == pytest.approx(results["test"][metric])


def test_predict_tsv_roundtrip(tmp_path):
    rows = ["abc\tcba", "hello\tolleh", "xyz\tzyx", "ab\tba", "search\thcraes", "rnn\tnnr"] * 10
    for split in ("train", "valid", "test"):
        (tmp_path / f"{split}.tsv").write_text("\n".join(rows) + "\n")
    run_dir = tmp_path / "run"
    code = main(["train", "--task", "tsv", "--train", str(tmp_path / "train.tsv"), "--valid",
                 str(tmp_path / "valid.tsv"), "--test", str(tmp_path / "test.tsv"), "--tokenize", "char",
                 "--metric", "edit", "--run-dir", str(run_dir), *TINY])
    assert code == 0
    out = subprocess.run([sys.executable, "-m", "searnn.cli", "predict", str(run_dir)], input="abc\nrnn\n",
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.splitlines()) == 2


def test_errors_are_messages_not_tracebacks(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("ok\tfine\nno tab here\n")
    result = run_cli("train", "--task", "tsv", "--train", str(bad), "--valid", str(bad), "--test", str(bad),
                     "--run-dir", str(tmp_path / "r"))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and "bad.tsv:2" in result.stderr
    result = run_cli("train", "--task", "nope", "--run-dir", str(tmp_path / "r2"))
    assert result.returncode != 0 and "valid:" in result.stderr and "Traceback" not in result.stderr
    result = run_cli("train", "--lrr", "1", "--run-dir", str(tmp_path / "r3"))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    result = run_cli("evaluate", str(tmp_path / "missing"))
    assert result.returncode != 0 and "not a run directory" in result.stderr


def test_help_lists_options_with_defaults():
    result = run_cli("train", "--task", "spelling", "--help")
    assert result.returncode == 0
    assert "--noise" in result.stdout and "default" in result.stdout and "--lr" in result.stdout


def test_tasks_lists_every_task(capsys):
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    for name in ("ocr", "chunking", "spelling", "translation", "tsv"):
        assert name in out
