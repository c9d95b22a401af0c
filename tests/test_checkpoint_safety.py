"""Checkpoint trust and crash safety (issue 12): divergence, safe loading, corrupt files, durable writes, the
run-directory lock."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import random
import stat
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from searnn import checkpoint as ckpt
from searnn import fileio
from searnn.cli import main as cli
from searnn.config import build_config
from searnn.divergence import LOSS_FACTOR, DivergenceError, DivergenceGuard
from searnn.errors import SearnnError
from searnn.train import Trainer, TrainingError, run

SMALL = {"task": "ocr", "limit_train": 64, "limit_valid": 16, "epochs": 1, "batch_size": 32, "hidden": 8,
         "emb_dim": 8, "tgt_emb_dim": 8, "progress": False, "checkpoint_minutes": 0.0}


def small(tmp_path: Path, name: str = "run", **kw) -> object:
    return build_config({**SMALL, "run_dir": str(tmp_path / name), **kw})


def cli_args(run_dir: Path, **kw) -> list[str]:
    """`searnn train` arguments of the SMALL run (plus ``kw``) into ``run_dir``."""
    args = ["train"]
    for key, value in {**SMALL, **kw}.items():
        args += [f"--{key.replace('_', '-')}", str(value).lower() if isinstance(value, bool) else str(value)]
    return args + ["--run-dir", str(run_dir)]


def one_error_line(err: str, *needles: str) -> str:
    """The CLI printed exactly one line, an error naming every needle (no traceback)."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines and "Traceback" not in err, err
    last = lines[-1]
    assert ": error: " in last, err
    for needle in needles:
        assert needle in last, (needle, last)
    return last


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A finished 2-epoch run (so that it has last.pt, last.prev.pt, best.pt); tests copy it, never modify it."""
    root = tmp_path_factory.mktemp("trained")
    run(build_config({**SMALL, "epochs": 2, "run_dir": str(root / "run")}))
    return root / "run"


def copy_run(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True)
    for f in src.iterdir():
        if f.is_file():
            (dst / f.name).write_bytes(f.read_bytes())
    return dst


# --------------------------------------------------------------------------------------------- A2 divergence


def test_lr_inf_stops_at_the_first_step_and_writes_no_checkpoint(tmp_path):
    """One batch per epoch: the NaN step is the epoch's last batch; it must not be validated nor saved."""
    trainer = Trainer(small(tmp_path, limit_train=32))
    for group in trainer.optimizer.param_groups:
        group["lr"] = float("inf")
    with pytest.raises(DivergenceError, match=r"non-finite parameters .*epoch 1, batch 1"):
        trainer.fit()
    run_dir = tmp_path / "run"
    for name in ("best.pt", "last.pt", "results.json", "metrics.jsonl"):
        assert not (run_dir / name).exists(), name


def test_lr_inf_through_the_cli_is_one_error_line(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert cli(cli_args(run_dir, limit_train=32, lr="inf")) != 0
    one_error_line(capsys.readouterr().err)
    assert not (run_dir / "best.pt").exists() and not (run_dir / "results.json").exists()


def test_huge_lr_is_stopped_by_the_divergence_policy(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert cli(cli_args(run_dir, lr="1e30")) == 1
    line = one_error_line(capsys.readouterr().err, "epoch 1, batch")
    assert "diverged" in line or "non-finite" in line
    assert not (run_dir / "results.json").exists() and not (run_dir / "best.pt").exists()


def test_divergence_guard_threshold_against_a_direct_computation():
    rng = random.Random(0)
    for _ in range(50):
        first = rng.choice([-1, 1]) * 10 ** rng.uniform(-3, 3)
        guard = DivergenceGuard()
        guard.check_loss(first, "epoch 1, batch 1", "")
        limit = LOSS_FACTOR * max(1.0, abs(first))
        guard.check_loss(limit * 0.999, "epoch 1, batch 2", "")  # below: fine
        with pytest.raises(DivergenceError, match="diverged at epoch 1, batch 3"):
            guard.check_loss(limit * 1.001, "epoch 1, batch 3", "")
    with pytest.raises(DivergenceError, match="non-finite loss"):
        DivergenceGuard().check_loss(float("nan"), "epoch 2, batch 1", "")
    assert issubclass(DivergenceError, TrainingError)


def test_parameter_check_names_the_non_finite_tensor():
    ok = [("a", torch.ones(3)), ("b", torch.full((2, 2), 1e30))]
    DivergenceGuard.check_parameters(ok, "epoch 1, batch 1", "")
    for bad in (float("nan"), float("inf"), -float("inf")):
        named = ok + [("decoder.w", torch.tensor([0.0, bad]))]
        with pytest.raises(DivergenceError, match=r"epoch 2, batch 5: decoder.w \(lr 1\)"):
            DivergenceGuard.check_parameters(named, "epoch 2, batch 5", "lr 1")


def test_divergence_reference_survives_a_resume(tmp_path):
    first = Trainer(small(tmp_path))
    first.fit()
    saved = ckpt.load_checkpoint(tmp_path / "run" / "last.pt")
    assert saved["divergence"]["reference"] == first.guard.reference is not None
    resumed = Trainer(small(tmp_path, epochs=2))
    assert resumed.resuming and resumed.guard.reference == first.guard.reference


def test_the_divergence_policy_is_in_train_help(capsys):
    with pytest.raises(SystemExit):
        cli(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "divergence: training stops" in text and "1e6 x max(1, |loss of the run's first batch|)" in text


def test_the_save_helper_refuses_a_non_finite_model(tmp_path):
    path = tmp_path / "x.pt"
    for bad in (float("nan"), float("inf")):
        with pytest.raises(SearnnError, match=r"refusing to write .*x.pt: parameter w holds non-finite"):
            ckpt.atomic_save({"model": {"w": torch.tensor([1.0, bad])}}, path)
        assert not path.exists() and not list(tmp_path.iterdir())
    ckpt.atomic_save({"model": {"w": torch.tensor([1.0]), "steps": torch.tensor([3])}}, path)
    assert path.exists()


# --------------------------------------------------------------------------------------------- B3 safe loading


class _Evil:
    """Unpickling this calls ``open(marker, "w")``: it would create the marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _plant(path: Path, marker: Path) -> None:
    torch.save({"model": {"w": _Evil(marker)}, "epoch": 1}, path)


def test_crafted_checkpoints_are_refused_by_predict_evaluate_and_warm_start(trained, tmp_path, capsys,
                                                                          monkeypatch):
    run_dir = copy_run(trained, tmp_path / "evil")
    marker = tmp_path / "PWNED"
    _plant(run_dir / "best.pt", marker)
    assert cli(["evaluate", str(run_dir), "--split", "valid"]) == 1
    one_error_line(capsys.readouterr().err, "refused to load", "best.pt")
    monkeypatch.setattr("sys.stdin", open(os.devnull))
    assert cli(["predict", str(run_dir)]) == 1
    one_error_line(capsys.readouterr().err, "refused to load", "best.pt")
    assert cli(cli_args(tmp_path / "new", warm_start=str(run_dir))) == 1
    one_error_line(capsys.readouterr().err, "--warm-start", "refused to load", "best.pt")
    _plant(run_dir / "last.pt", marker)
    (run_dir / "results.json").unlink()
    _plant(run_dir / "last.prev.pt", marker)
    assert cli(cli_args(run_dir, epochs=2)) == 1  # resuming from a crafted last.pt (and fallback)
    one_error_line(capsys.readouterr().err, "refused to load", "last.pt")
    assert not marker.exists()


def test_rng_state_round_trips_through_a_weights_only_checkpoint(tmp_path):
    random.seed(3)
    np.random.seed(4)
    torch.manual_seed(5)
    random.gauss(0, 1)  # a cached gaussian in python's state
    np.random.standard_normal()
    state = ckpt.rng_state()
    expected = (random.random(), random.gauss(0, 1), np.random.random(3).tolist(), torch.rand(3).tolist())
    ckpt.atomic_save({"model": {}, "rng": state}, tmp_path / "r.pt")
    loaded = torch.load(tmp_path / "r.pt", weights_only=True)["rng"]
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    ckpt.set_rng_state(loaded)
    assert (random.random(), random.gauss(0, 1), np.random.random(3).tolist(), torch.rand(3).tolist()) == expected


def test_every_load_goes_through_the_safe_helper():
    """No `torch.load` with weights_only=False anywhere in the package or the benchmarks."""
    root = Path(__file__).resolve().parents[1]
    for path in list((root / "src").rglob("*.py")) + list((root / "benchmarks").rglob("*.py")):
        text = path.read_text()
        assert "weights_only=False" not in text, path
        if path.name != "checkpoint.py":
            assert "torch.load(" not in text, path


# --------------------------------------------------------------------------------------------- C4 corrupt files


def test_unreadable_last_pt_falls_back_to_last_prev(trained, tmp_path, capsys):
    run_dir = copy_run(trained, tmp_path / "run")
    (run_dir / "results.json").unlink()
    data = (run_dir / "last.pt").read_bytes()
    (run_dir / "last.pt").write_bytes(data[: len(data) // 2])  # truncated
    trainer = Trainer(small(tmp_path, epochs=2))
    err = capsys.readouterr().err
    assert "warning:" in err and "last.pt" in err and "last.prev.pt" in err
    assert trainer.state.epoch == 1  # the previous checkpoint: after epoch 1
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 1
    results = trainer.fit()
    assert results["epochs"] == 2 and ckpt.load_checkpoint(run_dir / "last.pt")["state"]["epoch"] == 2


def test_both_last_checkpoints_unreadable_is_one_error_line(trained, tmp_path, capsys):
    run_dir = copy_run(trained, tmp_path / "run")
    (run_dir / "results.json").unlink()
    (run_dir / "last.pt").write_bytes(b"")
    (run_dir / "last.prev.pt").write_bytes(b"garbage" * 10)
    assert cli(cli_args(run_dir, epochs=2)) == 1
    one_error_line(capsys.readouterr().err, "last.pt", "last.prev.pt", "delete")


def test_save_keeps_the_previous_last_pt(tmp_path):
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    for step in range(3):
        ckpt.save_last({"model": {"w": torch.tensor([float(step)])}}, run_dir)
    assert ckpt.load_checkpoint(run_dir / "last.pt")["model"]["w"].item() == 2.0
    assert ckpt.load_checkpoint(run_dir / "last.prev.pt")["model"]["w"].item() == 1.0
    assert sorted(p.name for p in run_dir.iterdir()) == ["last.prev.pt", "last.pt"]  # no temp files left


@pytest.mark.parametrize("damage", [b"", b"PK\x03\x04 truncated", b"\x80\x02garbage"])
def test_corrupt_best_pt_through_evaluate(trained, tmp_path, capsys, damage):
    run_dir = copy_run(trained, tmp_path / "run")
    (run_dir / "best.pt").write_bytes(damage)
    assert cli(["evaluate", str(run_dir), "--split", "valid"]) == 1
    one_error_line(capsys.readouterr().err, str(run_dir / "best.pt"))


@pytest.mark.parametrize("name", ["config.yaml", "vocab.json"])
@pytest.mark.parametrize("damage", [b"{\n  train: [\n", b"\xff\xfe\x00garbage"])
def test_corrupt_config_or_vocab_names_the_file(trained, tmp_path, capsys, name, damage):
    run_dir = copy_run(trained, tmp_path / "run")
    (run_dir / name).write_bytes(damage)
    assert cli(["evaluate", str(run_dir), "--split", "valid"]) == 1
    one_error_line(capsys.readouterr().err, str(run_dir / name))
    assert cli(cli_args(run_dir, epochs=3)) == 1
    one_error_line(capsys.readouterr().err, str(run_dir / name))


def test_truncated_config_yaml_is_not_taken_for_a_config_change(trained, tmp_path, capsys):
    run_dir = copy_run(trained, tmp_path / "run")
    text = (run_dir / "config.yaml").read_text()
    (run_dir / "config.yaml").write_text(text[: text.index("model:")])  # cut before the model section
    assert cli(cli_args(run_dir, epochs=2)) == 1
    one_error_line(capsys.readouterr().err, "config.yaml", "truncated")


def test_corrupt_results_json_of_a_finished_run_is_rewritten(trained, tmp_path, capsys):
    run_dir = copy_run(trained, tmp_path / "run")
    good = json.loads((run_dir / "results.json").read_text())
    (run_dir / "results.json").write_text('{"task": "ocr", "val')
    last = (run_dir / "last.pt").read_bytes()
    results = run(small(tmp_path, epochs=2))
    assert "warning:" in capsys.readouterr().err
    assert results["test"] == good["test"] and json.loads((run_dir / "results.json").read_text())["epochs"] == 2
    assert (run_dir / "last.pt").read_bytes() == last  # not retrained


def test_torn_metrics_line_is_dropped_on_resume(trained, tmp_path, capsys):
    run_dir = copy_run(trained, tmp_path / "run")
    (run_dir / "results.json").unlink()
    with (run_dir / "metrics.jsonl").open("a") as f:
        f.write('{"epoch": 3, "train_lo')
    results = run(small(tmp_path, epochs=3))
    assert "torn last line" in capsys.readouterr().err
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3] and results["epochs"] == 3


def test_bad_line_in_the_middle_of_metrics_is_an_error_naming_it(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"epoch": 1}\nnot json\n{"epoch": 2}\n')
    with pytest.raises(SearnnError, match=r"metrics.jsonl:2: invalid JSON"):
        ckpt.read_jsonl(path)
    path.write_text('{"epoch": 1}\n{"epo')
    assert ckpt.read_jsonl(path) == [{"epoch": 1}]


def test_finished_run_prints_one_line_and_loads_no_checkpoint(trained, tmp_path, capsys, monkeypatch):
    run_dir = copy_run(trained, tmp_path / "run")

    def no_load(*a, **k):
        raise AssertionError("a finished run must not load a checkpoint")

    monkeypatch.setattr(ckpt, "load_checkpoint", no_load)
    monkeypatch.setattr(torch, "load", no_load)
    assert cli(cli_args(run_dir, epochs=2)) == 0
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert err == [f"{run_dir}: already finished (2 epochs); results in {run_dir / 'results.json'}"]


def test_report_and_plot_name_a_corrupt_file(trained, tmp_path, capsys):
    run_dir = copy_run(trained, tmp_path / "run")
    (run_dir / "results.json").write_text('{"task": ')
    assert cli(["report", str(run_dir)]) == 1
    one_error_line(capsys.readouterr().err, str(run_dir / "results.json"))
    (run_dir / "metrics.jsonl").write_text('{"epoch": 1, "valid_cer": 3}\n[1, 2]\n')
    assert cli(["plot", str(run_dir), "--out", str(tmp_path / "p.png")]) == 1
    one_error_line(capsys.readouterr().err, "metrics.jsonl:2")


# --------------------------------------------------------------------------------------------- C5 durable writes


def test_atomic_writes_fsync_the_file_and_the_directory(tmp_path, monkeypatch):
    synced: list[bool] = []  # True for a directory
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    fileio.atomic_write_text("hello", tmp_path / "a.txt")
    assert synced == [False, True] and (tmp_path / "a.txt").read_text() == "hello"
    synced.clear()
    ckpt.atomic_save({"model": {"w": torch.zeros(2)}}, tmp_path / "b.pt")
    assert synced == [False, True]


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("old")

    def boom(fh):
        fh.write(b"partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fileio.atomic_write_with(boom, path)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_run_files_go_through_the_atomic_helper(tmp_path, monkeypatch):
    written: list[str] = []
    real = ckpt.atomic_write_text

    def spy(text: str, path: Path) -> None:
        written.append(Path(path).name)
        real(text, path)

    monkeypatch.setattr(ckpt, "atomic_write_text", spy)
    run(small(tmp_path, limit_train=32))
    assert {"config.yaml", "vocab.json", "results.json"} <= set(written)


# --------------------------------------------------------------------------------------------- C6 the lock


def _contend(run_dir: str, barrier, guard, holders, most, wins) -> None:
    from searnn.checkpoint import acquire_lock, release_lock

    barrier.wait()
    try:
        lock = acquire_lock(Path(run_dir))
    except SearnnError:
        return
    with guard:
        holders.value += 1
        most.value = max(most.value, holders.value)
        wins.value += 1
    time.sleep(0.005)
    with guard:
        holders.value -= 1
    release_lock(lock)


def test_concurrent_processes_never_hold_the_lock_together(tmp_path, monkeypatch):
    """Losers retry for a while, so locks are also taken right after a release (the unlinked-file race)."""
    from searnn import runlock

    monkeypatch.setattr(runlock, "_BUSY_RETRY_SECONDS", 0.3)  # inherited by the forked processes
    ctx = mp.get_context("fork")
    n_procs, trials = 20, 8
    for trial in range(trials):
        run_dir = tmp_path / f"run{trial}"
        barrier, guard = ctx.Barrier(n_procs), ctx.Lock()
        holders, most, wins = ctx.Value("i", 0), ctx.Value("i", 0), ctx.Value("i", 0)
        procs = [ctx.Process(target=_contend, args=(str(run_dir), barrier, guard, holders, most, wins))
                 for _ in range(n_procs)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(120)
            assert p.exitcode == 0
        assert most.value == 1 and wins.value >= 1, (trial, most.value, wins.value)
        assert not (run_dir / ckpt.LOCK).exists()


def test_lock_holder_reports_a_live_holder_only(tmp_path):
    run_dir = tmp_path / "r"
    assert ckpt.lock_holder(run_dir) is None
    lock = ckpt.acquire_lock(run_dir)
    ctx = mp.get_context("fork")
    seen = ctx.Value("i", -1)

    def probe() -> None:
        holder = ckpt.lock_holder(run_dir)
        seen.value = -2 if holder is None else holder

    p = ctx.Process(target=probe)
    p.start()
    p.join(60)
    assert seen.value == os.getpid()
    ckpt.release_lock(lock)
    assert ckpt.lock_holder(run_dir) is None and not (run_dir / ckpt.LOCK).exists()


def test_unusable_run_dir_or_lock_file_is_one_error_line(tmp_path, capsys):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    assert cli(cli_args(not_a_dir)) == 1
    one_error_line(capsys.readouterr().err, "exists and is not a directory", str(not_a_dir))
    run_dir = tmp_path / "run"
    (run_dir / ckpt.LOCK).mkdir(parents=True)  # the lock file cannot be created
    assert cli(cli_args(run_dir)) == 1
    one_error_line(capsys.readouterr().err, "cannot create the lock file", str(run_dir / ckpt.LOCK))


def test_warm_start_from_a_run_still_in_training_is_refused(trained, tmp_path, capsys):
    """A run dir whose lock is held (its trainer is running) holds only the best checkpoint so far: refused
    with one line; the same run once its lock is released, or its best.pt named as a file, is taken."""
    from searnn import runlock

    source = copy_run(trained, tmp_path / "source")
    lock = runlock.acquire_lock(source)
    try:
        assert cli(cli_args(tmp_path / "new", warm_start=str(source))) == 1
        one_error_line(capsys.readouterr().err, "--warm-start", "still being trained", "best.pt")
        assert not (tmp_path / "new" / "config.yaml").exists()  # refused before the run dir is written
        assert cli(cli_args(tmp_path / "file", warm_start=str(source / "best.pt"))) == 0
    finally:
        runlock.release_lock(lock)
    assert cli(cli_args(tmp_path / "after", warm_start=str(source))) == 0
    capsys.readouterr()
