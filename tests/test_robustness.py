"""Bad input never ends in a traceback: a table of bad command lines walked through the CLI.

Each row is a command that must fail with exit status != 0, one line on stderr (``searnn CMD: error: ...``),
no ``Traceback``, and leave every file of an existing finished run directory (``RUN``) untouched (names,
sizes and modification times compared before and after). Rows that name a fresh run directory also check
that no ``config.yaml`` was written there (a failed command must not block the corrected one).

Most rows call :func:`searnn.cli.main` in this process (fast); rows marked ``proc`` run
``python -m searnn.cli`` in a subprocess, as a user would. Every row fails before training starts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import subprocess
import sys
from pathlib import Path

import pytest

from searnn.cli import main
from searnn.config import TrainConfig, build_config, field_type, read_yaml
from searnn.data.io import read_lines
from searnn.data.registry import TASKS
from searnn.data.tsv import TsvConfig
from searnn.data.tsv import load as load_tsv
from searnn.errors import ConfigError, DataError
from searnn.models import ModelConfig
from searnn.objectives import OBJECTIVES

TINY = ["--epochs", "1", "--hidden", "8", "--emb-dim", "8", "--tgt-emb-dim", "8", "--no-progress",
        "--batch-size", "16"]
PAIRS = ["abc\tcba", "hello\tolleh", "xyz\tzyx", "ab\tba", "rnn\tnnr"] * 4


@dataclasses.dataclass
class Workspace:
    root: Path
    run: Path  # a finished tsv run
    tsv: list[str]  # --task tsv --train ... --valid ... --test ... (good files)

    def __getitem__(self, name: str) -> str:
        return str(self.root / name)


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Workspace:
    root = tmp_path_factory.mktemp("robust")
    for split in ("train", "valid", "test"):
        (root / f"{split}.tsv").write_text("\n".join(PAIRS) + "\n")
    tsv = ["--task", "tsv", "--train", str(root / "train.tsv"), "--valid", str(root / "valid.tsv"),
           "--test", str(root / "test.tsv")]
    run = root / "run"
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        assert main(["train", *tsv, *TINY, "--run-dir", str(run)]) == 0
    (root / "binary.yaml").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    (root / "latin1.yaml").write_bytes("lr: 0.1\nseed: 2 # caf\xe9\n".encode("latin-1"))
    (root / "broken.yaml").write_text("lr: [0.1\nepochs: 2\n")
    (root / "list.yaml").write_text("- lr\n- 0.1\n")
    (root / "adir").mkdir()
    (root / "badrun").mkdir()
    (root / "badrun" / "config.yaml").write_bytes(b"train:\n  lr: \xff\xfe0.1\n")
    (root / "badrun" / "best.pt").write_bytes(b"")
    (root / "afile").write_text("not a directory\n")
    (root / "latin1.tsv").write_bytes("abc\tcba\ncaf\xe9\tefac\n".encode("latin-1"))
    (root / "long.tsv").write_text("x" * 5000 + "\ty\n" + "\n".join(PAIRS) + "\n")
    (root / "notab.tsv").write_text("abc\tcba\nno tab here\n")
    (root / "empty.tsv").write_text("")
    (root / "grid_typo.yaml").write_text("name: g\nruns:\n  - name: a\n    hiden: 3\n")
    (root / "grid_binary.yaml").write_bytes(b"name: g\x00\xff\xfe\n")
    (root / "grid_warm.yaml").write_text(
        f"name: g\nout: {root / 'grid_out'}\nbase: {{task: ocr, epochs: 1}}\nruns:\n"
        f"  - name: a\n    warm_start: {root / 'nowhere'}/seed{{seed}}\n"
    )
    return Workspace(root, run, tsv)


def snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    """``{relative path: (size, mtime_ns)}`` of every file below ``directory``."""
    return {str(p.relative_to(directory)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(directory.rglob("*")) if p.is_file()}


# (id, argv builder, stdin, must appear in the message, runs in a subprocess)
Row = tuple[str, object, str | None, str, bool]


def row(name: str, argv, expect: str = "", stdin: str | None = None, proc: bool = False) -> Row:
    return (name, argv, stdin, expect, proc)


def fresh(ws: Workspace, name: str) -> list[str]:
    return ["--run-dir", ws[f"fresh-{name}"]]


ROWS: list[Row] = [
    # --- non-finite and out-of-range numbers (D8, D9)
    row("lr-nan", lambda w: ["train", "--lr", "nan", "--run-dir", str(w.run)], "--lr", proc=True),
    row("lr-inf", lambda w: ["train", "--lr", "inf", "--run-dir", str(w.run)], "finite"),
    row("lr-zero", lambda w: ["train", "--lr", "0", "--run-dir", str(w.run)], "--lr must be > 0"),
    row("clip-nan", lambda w: ["train", "--clip-norm", "nan", "--run-dir", str(w.run)], "--clip-norm"),
    row("ckpt-negative", lambda w: ["train", "--checkpoint-minutes", "-1", "--run-dir", str(w.run)],
        "--checkpoint-minutes must be >= 0"),
    row("lr-decay-negative", lambda w: ["train", "--lr-decay", "-3", "--run-dir", str(w.run)], "(0, 1]"),
    row("lr-decay-above-one", lambda w: ["train", "--lr-decay", "1.5", "--run-dir", str(w.run)], "--lr-decay"),
    row("dropout", lambda w: ["train", "--dropout", "1.2", "--run-dir", str(w.run)], "--dropout"),
    row("weight-decay", lambda w: ["train", "--weight-decay", "-0.1", "--run-dir", str(w.run)], "--weight-decay"),
    row("ref-prob", lambda w: ["train", "--objective", "searnn", "--rollin-ref-prob", "2", "--run-dir",
                               str(w.run)], "--rollin-ref-prob must be in [0, 1]"),
    row("noise", lambda w: ["train", "--task", "spelling", "--noise", "-0.5", "--run-dir", str(w.run)], "--noise"),
    row("epochs-zero", lambda w: ["train", "--epochs", "0", "--run-dir", str(w.run)], "--epochs must be >= 1"),
    row("epochs-word", lambda w: ["train", "--epochs", "three", "--run-dir", str(w.run)], "expected int"),
    row("beam-zero", lambda w: ["train", "--beam", "0", "--run-dir", str(w.run)], "--beam"),
    row("max-src-len", lambda w: ["train", *w.tsv, "--max-src-len", "-1", *fresh(w, "msl")],
        "--max-src-len"),
    row("nan-in-yaml", lambda w: ["train", "--config", w["nan.yaml"], "--run-dir", str(w.run)], "finite"),
    # --- options: names, abbreviations, owners (E11)
    row("abbreviation", lambda w: ["train", "--epoch", "3", "--run-dir", str(w.run)], "did you mean --epochs",
        proc=True),
    row("lr-schedule-name", lambda w: ["train", "--lr-schedule", "cosine", "--run-dir", str(w.run)],
        "--lr-schedule"),
    row("optimizer", lambda w: ["train", "--optimizer", "rmsprop", "--run-dir", str(w.run)], "--optimizer"),
    row("other-objective", lambda w: ["train", "--rollin", "learned", "--run-dir", str(w.run)],
        "--rollin belongs to --objective searnn"),
    row("other-task", lambda w: ["train", "--noise", "0.3", "--run-dir", str(w.run)],
        "--noise belongs to --task spelling"),
    row("unused-task-option", lambda w: ["train", *w.tsv, "--split-seed", "3", "--run-dir", str(w.run)],
        "--split-seed does not apply to --task tsv"),
    row("unknown-task", lambda w: ["train", "--task", "nope", "--run-dir", str(w.run)], "valid:"),
    row("unknown-objective", lambda w: ["train", "--objective", "nope", "--run-dir", str(w.run)], "valid:"),
    row("missing-value", lambda w: ["train", "--run-dir", str(w.run), "--lr"], "expected one argument"),
    row("bad-bool", lambda w: ["train", "--progress", "maybe", "--run-dir", str(w.run)], "expected bool"),
    row("no-switch-value", lambda w: ["train", "--no-progress=yes", "--run-dir", str(w.run)], "takes no value"),
    row("stray-word", lambda w: ["train", "ocr", "--run-dir", str(w.run)], "unexpected argument"),
    row("unknown-command", lambda w: ["trian"], "did you mean 'train'"),
    # --- files: config, data, run dirs (D8, D9, E10)
    row("binary-config", lambda w: ["train", "--config", w["binary.yaml"], "--run-dir", str(w.run)], "binary",
        proc=True),
    row("latin1-config", lambda w: ["train", "--config", w["latin1.yaml"], "--run-dir", str(w.run)], "UTF-8"),
    row("broken-yaml", lambda w: ["train", "--config", w["broken.yaml"], "--run-dir", str(w.run)], "invalid YAML"),
    row("list-yaml", lambda w: ["train", "--config", w["list.yaml"], "--run-dir", str(w.run)], "mapping"),
    row("config-is-dir", lambda w: ["train", "--config", w["adir"], "--run-dir", str(w.run)], "directory"),
    row("config-missing", lambda w: ["train", "--config", w["nope.yaml"], "--run-dir", str(w.run)], "not found"),
    row("run-dir-proc", lambda w: ["train", "--run-dir", "/proc/searnn-x/run"], "--run-dir", proc=True),
    row("run-dir-under-file", lambda w: ["train", "--run-dir", w["afile"] + "/run"], "is a file"),
    row("run-dir-is-file", lambda w: ["train", "--run-dir", w["afile"]], "not a directory"),
    row("train-is-dir", lambda w: ["train", *w.tsv[:3], w["adir"], *w.tsv[4:], *fresh(w, "dir")], "is a directory"),
    row("train-missing", lambda w: ["train", *w.tsv[:3], w["nope.tsv"], *w.tsv[4:], *fresh(w, "missing")],
        "not found"),
    row("valid-not-given", lambda w: ["train", *w.tsv[:4], *w.tsv[6:], *fresh(w, "novalid")], "--valid"),
    row("tsv-metric", lambda w: ["train", *w.tsv, "--metric", "accuracy", *fresh(w, "metric")], "--metric"),
    row("tsv-tokenize", lambda w: ["train", *w.tsv, "--tokenize", "words", *fresh(w, "tok")], "--tokenize"),
    row("tsv-too-long", lambda w: ["train", *w.tsv[:3], w["long.tsv"], *w.tsv[4:], *fresh(w, "long")],
        "long.tsv:1"),
    row("tsv-too-long-action", lambda w: ["train", *w.tsv, "--too-long", "truncate", *fresh(w, "act")],
        "--too-long"),
    row("tsv-latin1", lambda w: ["train", *w.tsv[:3], w["latin1.tsv"], *w.tsv[4:], *fresh(w, "latin")], "UTF-8"),
    row("tsv-no-tab", lambda w: ["train", *w.tsv[:3], w["notab.tsv"], *w.tsv[4:], *fresh(w, "notab")],
        "notab.tsv:2"),
    row("tsv-empty", lambda w: ["train", *w.tsv[:3], w["empty.tsv"], *w.tsv[4:], *fresh(w, "empty")], "empty"),
    row("warm-start-missing", lambda w: ["train", *w.tsv, *TINY, "--warm-start", w["nowhere"], *fresh(w, "warm")],
        "--warm-start"),
    row("unknown-device", lambda w: ["train", *w.tsv, "--device", "tpu", *fresh(w, "device")], "device"),
    row("different-config", lambda w: ["train", *w.tsv, *TINY[:2], "--hidden", "9", "--run-dir", str(w.run)],
        "different config"),
    row("data-dir-is-file", lambda w: ["train", "--task", "chunking", "--data-dir", w["afile"], *fresh(w, "dd")],
        "is a file"),
    row("run-config-not-utf8", lambda w: ["train", *w.tsv, "--run-dir", w["badrun"]], "config.yaml:2"),
    # --- the other commands
    row("evaluate-config-not-utf8", lambda w: ["evaluate", w["badrun"]], "not valid UTF-8", proc=True),
    row("evaluate-missing", lambda w: ["evaluate", w["nope"]], "not a run directory"),
    row("evaluate-split", lambda w: ["evaluate", str(w.run), "--split", "dev"], "invalid choice"),
    row("evaluate-beam", lambda w: ["evaluate", str(w.run), "--beam", "0"], "--beam"),
    row("evaluate-len-norm", lambda w: ["evaluate", str(w.run), "--len-norm", "nan"], "--len-norm"),
    row("predict-empty-line", lambda w: ["predict", str(w.run)], "<stdin>:2", "abc\n\n"),
    row("predict-beam-word", lambda w: ["predict", str(w.run), "--beam", "wide"], "--beam", "abc\n"),
    row("report-missing", lambda w: ["report", w["nope"]], "nope"),
    row("report-group-by", lambda w: ["report", str(w.run), "--group-by", "seed"], "--group-by"),
    row("experiment-missing", lambda w: ["experiment", w["nope.yaml"]], "not found"),
    row("experiment-binary", lambda w: ["experiment", w["grid_binary.yaml"]], "grid_binary.yaml"),
    row("experiment-typo", lambda w: ["experiment", w["grid_typo.yaml"], "--dry-run"], "did you mean hidden"),
    row("experiment-warm-start", lambda w: ["experiment", w["grid_warm.yaml"]], "warm_start"),
    row("tasks-extra", lambda w: ["tasks", "--all"], "unrecognized arguments"),
    row("plot-missing", lambda w: ["plot", w["nope"], "--out", w["x.png"]], "nope"),
]


def test_the_table_is_large_enough():
    assert len(ROWS) >= 40
    assert len({r[0] for r in ROWS}) == len(ROWS)
    assert sum(r[4] for r in ROWS) >= 4  # some rows run as a real subprocess


def run_row(argv: list[str], stdin: str | None, proc: bool) -> tuple[int, str]:
    if proc:
        done = subprocess.run([sys.executable, "-m", "searnn.cli", *argv], input=stdin or "",
                              capture_output=True, text=True, timeout=300)
        return done.returncode, done.stderr
    err, out = io.StringIO(), io.StringIO()
    old_stdin = sys.stdin
    sys.stdin = io.StringIO(stdin or "")
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            code = main(argv)
    finally:
        sys.stdin = old_stdin
    return code, err.getvalue()


@pytest.mark.parametrize("name,argv,stdin,expect,proc", ROWS, ids=[r[0] for r in ROWS])
def test_bad_input_is_one_line_error(ws, name, argv, stdin, expect, proc):
    (ws.root / "nan.yaml").write_text("lr: .nan\n")
    args = argv(ws)
    target = Path(args[args.index("--run-dir") + 1]) if "--run-dir" in args else None
    new_dir = target is not None and not target.exists()
    before = snapshot(ws.run)
    code, stderr = run_row(args, stdin, proc)
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert code != 0, stderr
    assert "Traceback" not in stderr
    assert len(lines) == 1, stderr
    assert expect in lines[0], lines[0]
    assert snapshot(ws.run) == before, "a failed command changed the existing run directory"
    if new_dir and target.is_dir():
        assert not (target / "config.yaml").exists(), "a failed command left a config.yaml behind"


def test_no_command_prints_usage_on_stderr_with_status_2(capsys):
    assert main([]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "usage: searnn COMMAND" in captured.err


def test_failed_command_does_not_block_the_corrected_one(ws):
    """E10: a run that failed on its data (missing --valid) writes nothing; the corrected command trains."""
    run_dir = ws.root / "corrected"
    code, _ = run_row(["train", *ws.tsv[:4], *ws.tsv[6:], *TINY, "--run-dir", str(run_dir)], None, False)
    assert code != 0 and not (run_dir / "config.yaml").exists()
    code, stderr = run_row(["train", *ws.tsv, *TINY, "--run-dir", str(run_dir)], None, False)
    assert code == 0, stderr
    assert (run_dir / "results.json").exists()


# --------------------------------------------------------------------------------------------- every option


def _all_config_classes() -> list[tuple[str, type, str, str]]:
    """(option, class, task, objective) for every field of every config class, with a task and objective
    under which it is active."""
    out = []
    for task, (cls, _) in TASKS.items():
        out += [(f.name, cls, task, "mle") for f in dataclasses.fields(cls)]
    for objective, obj in OBJECTIVES.items():
        out += [(f.name, obj.config_class, "ocr", objective) for f in dataclasses.fields(obj.config_class)]
    out += [(f.name, cls, "ocr", "mle") for cls in (TrainConfig, ModelConfig) for f in dataclasses.fields(cls)]
    return out


FLOAT_OPTIONS = sorted({(name, task, objective) for name, cls, task, objective in _all_config_classes()
                        if field_type(cls, next(f for f in dataclasses.fields(cls) if f.name == name)) is float})


@pytest.mark.parametrize("name,task,objective", FLOAT_OPTIONS)
@pytest.mark.parametrize("bad", ["nan", "inf", "-inf"])
def test_every_float_option_refuses_non_finite_values(name, task, objective, bad):
    values = {"task": task, "objective": objective, name: bad}
    with pytest.raises(ConfigError, match="--" + name.replace("_", "-")):
        build_config(values)


def test_float_options_found():
    names = {n for n, _, _ in FLOAT_OPTIONS}
    assert {"lr", "clip_norm", "dropout", "noise", "alpha", "rollin_ref_prob", "tok_tau"} <= names


@pytest.mark.parametrize("name", ["checkpoint_minutes", "time_budget", "weight_decay", "clip_norm", "min_lr",
                                  "len_norm", "momentum", "early_stop", "limit_valid", "lr_patience"])
def test_training_options_refuse_negative_values(name):
    with pytest.raises(ConfigError, match="--" + name.replace("_", "-")):
        build_config({name: -1})


@pytest.mark.parametrize("name,value", [("lr_decay", 0), ("lr_decay", 1.01), ("momentum", 1.0), ("dropout", 1.0),
                                        ("valid_fraction", 1.0), ("test_fold", 10)])
def test_bounded_options(name, value):
    with pytest.raises(ConfigError, match="--" + name.replace("_", "-")):
        build_config({name: value})


@pytest.mark.parametrize("name,value", [("lr_decay", 1.0), ("momentum", 0.9), ("dropout", 0.0),
                                        ("checkpoint_minutes", 0), ("seed", -5)])
def test_bounds_accept_the_valid_edges(name, value):
    assert build_config({name: value}) is not None


# --------------------------------------------------------------------------------------------- loaders


def test_byte_order_mark_is_not_a_token(tmp_path):
    plain, gz = tmp_path / "bom.tsv", tmp_path / "bom.tsv.gz"
    plain.write_bytes("\ufeffab\tba\n".encode())
    import gzip

    gz.write_bytes(gzip.compress("\ufeffab\tba\n".encode()))
    for path in (plain, gz):
        assert list(read_lines(path)) == [(1, "ab\tba")]
    config = tmp_path / "c.yaml"
    config.write_bytes("\ufeffepochs: 3\n".encode())
    assert read_yaml(config) == {"epochs": 3}


def _tsv_files(tmp_path: Path, train_rows: list[str]) -> TsvConfig:
    (tmp_path / "train.tsv").write_text("\n".join(train_rows) + "\n")
    (tmp_path / "ok.tsv").write_text("ab\tba\n")
    return TsvConfig(train=str(tmp_path / "train.tsv"), valid=str(tmp_path / "ok.tsv"), test=str(tmp_path / "ok.tsv"))


def test_too_long_lines_error_or_skip(tmp_path, capsys):
    rows = ["ab\tba", "x" * 30 + "\ty", "cd\t" + "z" * 12, "ef\tfe"]
    cfg = _tsv_files(tmp_path, rows)
    cfg.max_src_len, cfg.max_tgt_len = 20, 10
    with pytest.raises(DataError, match=r"train.tsv:2: the source has 30 tokens, more than --max-src-len 20"):
        load_tsv(cfg)
    cfg.too_long = "skip"
    task = load_tsv(cfg)
    kept = [len(r.split("\t")[0]) <= 20 and len(r.split("\t")[1]) <= 10 for r in rows]  # the reference filter
    assert len(task.train) == sum(kept) == 2
    assert "skipped 2 line(s)" in capsys.readouterr().err
    cfg.max_src_len = cfg.max_tgt_len = 0  # no limit
    assert len(load_tsv(cfg).train) == 4


def test_directory_given_as_a_file(tmp_path):
    cfg = _tsv_files(tmp_path, ["ab\tba"])
    cfg.valid = str(tmp_path)
    with pytest.raises(DataError, match="is a directory"):
        load_tsv(cfg)
