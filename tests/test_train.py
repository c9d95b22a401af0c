"""Training loop: runs, writes its run dir, resumes exactly, refuses a changed config, catches NaN."""

import json

import pytest
import torch

from searnn.config import build_config
from searnn.errors import ConfigError
from searnn.train import Trainer, TrainingError, run

SMALL = {"task": "ocr", "limit_train": 96, "limit_valid": 32, "epochs": 2, "batch_size": 32, "hidden": 16,
         "emb_dim": 16, "tgt_emb_dim": 16, "progress": False, "checkpoint_minutes": 0.0}


def small(tmp_path, **kw):
    values = dict(SMALL, run_dir=str(tmp_path / kw.pop("name", "run")))
    values.update(kw)
    return build_config(values)


def test_run_writes_results_and_logs(tmp_path):
    results = run(small(tmp_path))
    run_dir = tmp_path / "run"
    for name in ("config.yaml", "metrics.jsonl", "results.json", "last.pt", "best.pt", "vocab.json"):
        assert (run_dir / name).exists(), name
    saved = json.loads((run_dir / "results.json").read_text())
    for key in ("task", "objective", "metric", "valid", "test", "epochs", "train_examples", "seconds_per_epoch"):
        assert key in saved
    assert saved["train_examples"] == 96 and saved["epochs"] == 2
    assert results["metric"] == "cer" and 0 <= results["test"]["cer"] <= 100
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2 and "valid_cer" in json.loads(lines[0])


def test_resume_gives_identical_parameters(tmp_path):
    straight = Trainer(small(tmp_path, name="a"))
    straight.fit()
    first = Trainer(small(tmp_path, name="b", epochs=1))
    first.fit()
    resumed = Trainer(small(tmp_path, name="b", epochs=2))
    assert resumed.resuming and resumed.state.epoch == 1
    resumed.fit()
    # finish() loads the best checkpoint; compare the last checkpoints, which hold the trained weights
    la = torch.load(tmp_path / "a" / "last.pt", weights_only=False)["model"]
    lb = torch.load(tmp_path / "b" / "last.pt", weights_only=False)["model"]
    for k in la:
        assert torch.equal(la[k], lb[k]), k


def test_mid_epoch_resume_is_exact(tmp_path):
    straight = Trainer(small(tmp_path, name="a", epochs=1))
    straight.fit()
    # interrupt after 2 of the 3 batches of the epoch, checkpoint, then resume in a fresh Trainer
    part = Trainer(small(tmp_path, name="c", epochs=1))
    batches_done = 2

    def stop_after(n):
        calls = {"n": 0}
        orig = part.objective.__call__

        def wrapped(model, batch):
            calls["n"] += 1
            if calls["n"] > n:
                raise KeyboardInterrupt
            return orig(model, batch)

        return wrapped

    part.objective = type("O", (), {"__call__": staticmethod(stop_after(batches_done)),
                                    "start_epoch": lambda self, *a: None})()
    with pytest.raises(KeyboardInterrupt):
        part.fit()  # saves last.pt on the interrupt
    assert part.state.batch == batches_done
    resumed = Trainer(small(tmp_path, name="c", epochs=1))
    assert resumed.state.batch == batches_done
    resumed.fit()
    la = torch.load(tmp_path / "a" / "last.pt", weights_only=False)["model"]
    lc = torch.load(tmp_path / "c" / "last.pt", weights_only=False)["model"]
    for k in la:
        assert torch.allclose(la[k], lc[k], atol=1e-6), k


def test_changed_config_is_refused(tmp_path):
    run(small(tmp_path, epochs=1))
    with pytest.raises(ConfigError, match="different config.*lr"):
        Trainer(small(tmp_path, epochs=1, lr=0.1))


def test_finished_run_is_not_retrained(tmp_path):
    first = run(small(tmp_path, epochs=1))
    again = run(small(tmp_path, epochs=1))
    assert again["test"] == first["test"]


def test_nan_loss_is_a_clear_error(tmp_path):
    trainer = Trainer(small(tmp_path, epochs=1))

    class NanObjective:
        def start_epoch(self, *a):
            pass

        def __call__(self, model, batch):
            from searnn.objectives import LossOutput

            return LossOutput(torch.tensor(float("nan"), requires_grad=True))

    trainer.objective = NanObjective()
    with pytest.raises(TrainingError, match="non-finite loss.*epoch 1, batch 1"):
        trainer.train_epoch(0)


def test_run_dir_lock_refuses_a_second_trainer_and_takes_over_stale_locks(tmp_path):
    """Two processes training into one run dir would clobber each other's checkpoints."""
    import subprocess
    import sys

    from searnn.checkpoint import LOCK
    from searnn.errors import SearnnError

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    # a live process holds the lock (flock on train.lock): refused with a clear error, nothing written
    code = ("import sys, time; from pathlib import Path; from searnn.checkpoint import acquire_lock; "
            "acquire_lock(Path(sys.argv[1])); print('locked', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(run_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert (run_dir / LOCK).read_text() == str(holder.pid)
        with pytest.raises(SearnnError, match=f"being trained by process {holder.pid}"):
            run(small(tmp_path))
        assert not (run_dir / "config.yaml").exists()
    finally:
        holder.kill()
        holder.wait()
    # the holder was killed (SIGKILL: its lock file stays): the lock is free, the run takes it and removes it
    results = run(small(tmp_path))
    assert results["epochs"] == 2 and not (run_dir / LOCK).exists()
