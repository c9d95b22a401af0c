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


def _tiny_tsv_run(tmp_path) -> str:
    rows = ["abc\tcba", "hello\tolleh", "xyz\tzyx", "ab\tba"] * 5
    for split in ("train", "valid", "test"):
        (tmp_path / f"{split}.tsv").write_text("\n".join(rows) + "\n")
    run_dir = tmp_path / "run"
    code = main(["train", "--task", "tsv", "--train", str(tmp_path / "train.tsv"), "--valid",
                 str(tmp_path / "valid.tsv"), "--test", str(tmp_path / "test.tsv"), "--run-dir", str(run_dir),
                 "--epochs", "1", "--hidden", "8", "--emb-dim", "8", "--tgt-emb-dim", "8", "--no-progress"])
    assert code == 0
    return str(run_dir)


def test_predict_warns_once_about_tabs_and_unknown_tokens(tmp_path, capsys, monkeypatch):
    run_dir = _tiny_tsv_run(tmp_path)
    capsys.readouterr()
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("abc\tcba\nqqab\nxyz\twhatever\n"))
    assert main(["predict", run_dir]) == 0
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 3
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert len(warnings) == 2
    assert "2 input line(s) hold a TAB" in err
    assert "2 source token(s) are not in the training vocabulary" in err  # the two q's


def test_predict_ignores_a_byte_order_mark(tmp_path, capsys, monkeypatch):
    run_dir = _tiny_tsv_run(tmp_path)
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("\ufeffabc\n"))
    capsys.readouterr()
    assert main(["predict", run_dir]) == 0
    assert "warning" not in capsys.readouterr().err


def test_broken_pipe_exits_quietly(tmp_path):
    """``searnn evaluate DIR | head -1``: the reader goes away; no traceback, status 0 or 141."""
    run_dir = _tiny_tsv_run(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "searnn.cli", "evaluate", run_dir], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()  # nobody reads the output
    _, err = proc.communicate(timeout=300)
    assert proc.returncode in (0, 141), err
    assert b"Traceback" not in err and b"BrokenPipe" not in err and b"Exception ignored" not in err


def test_boolean_options_are_switches():
    from searnn.cli import parse_train_args
    from searnn.config import build_config

    def lazy(*args: str) -> bool:
        return build_config(parse_train_args(["--objective", "seq-smoothing", *args])).objective.lazy

    assert lazy("--lazy") is True
    assert lazy("--no-lazy") is False
    assert lazy("--lazy", "true") is True and lazy("--lazy", "off") is False and lazy("--lazy=no") is False
    cfg = build_config(parse_train_args(["--bidirectional", "--no-progress"]))
    assert cfg.model.bidirectional is True and cfg.train.progress is False
    cfg = build_config(parse_train_args(["--no-bidirectional", "--progress"]))
    assert cfg.model.bidirectional is False and cfg.train.progress is True


def test_no_abbreviations():
    from searnn.cli import parse_train_args
    from searnn.errors import ConfigError

    with pytest.raises(ConfigError, match="did you mean --epochs"):
        parse_train_args(["--epoch", "3"])
    with pytest.raises(ConfigError, match="--lr-patience"):  # --lr-pat is no longer taken for --lr-patience
        parse_train_args(["--lr-pat", "3"])


def test_task_help_lists_only_its_options():
    result = run_cli("train", "--task", "tsv", "--help")
    assert result.returncode == 0
    assert "--split-seed" not in result.stdout and "--max-src-len" in result.stdout and "--too-long" in result.stdout
    result = run_cli("train", "--task", "ocr", "--help")
    assert "--split-seed" in result.stdout and "--max-src-len" not in result.stdout


def test_exit_status_2_for_a_malformed_command_line_1_for_bad_values(tmp_path, capsys):
    run_dir = str(tmp_path / "r")
    assert main(["train", "--epoch", "3", "--run-dir", run_dir]) == 2
    assert main(["train", "--lr"]) == 2
    assert main(["trian"]) == 2
    assert main(["train", "--lr", "nan", "--run-dir", run_dir]) == 1
    err = capsys.readouterr().err
    assert "did you mean --epochs" in err and "did you mean 'train'" in err and "--lr" in err
    assert not (tmp_path / "r").exists()
