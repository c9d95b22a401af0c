"""Training loop: runs, writes its run dir, resumes exactly, refuses a changed config, catches NaN."""

import json
import os
import random
import subprocess
import sys
from pathlib import Path

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
        assert torch.equal(la[k], lc[k]), k


def test_ctrl_c_inside_a_random_batch_resumes_exactly(tmp_path):
    """Ctrl-C in the middle of a batch whose objective draws random numbers (mixed roll-in and roll-out):
    last.pt holds the generator states the batch started from, so the redone batch draws the same."""
    opts = {"objective": "searnn", "rollin": "mixed", "rollout": "mixed", "sample_tokens": "uniform",
            "num_tokens": 3, "epochs": 2, "rollin_schedule": "linear"}
    Trainer(small(tmp_path, name="a", **opts)).fit()
    part = Trainer(small(tmp_path, name="c", **opts))
    real = part.objective
    calls = {"n": 0}

    class Interrupting:
        def __getattr__(self, name):
            return getattr(real, name)

        def __call__(self, model, batch):
            calls["n"] += 1
            out = real(model, batch)  # draws from the generators and counts the batch in the schedule ...
            if calls["n"] == 5:
                raise KeyboardInterrupt  # ... then the batch is cut before its optimizer step
            return out

    part.objective = Interrupting()
    with pytest.raises(KeyboardInterrupt):
        part.fit()
    assert part.state.epoch == 1 and part.state.batch == 1  # 3 batches per epoch: cut in epoch 2, batch 2
    Trainer(small(tmp_path, name="c", **opts)).fit()
    la = torch.load(tmp_path / "a" / "last.pt", weights_only=True)["model"]
    lc = torch.load(tmp_path / "c" / "last.pt", weights_only=True)["model"]
    for k in la:
        assert torch.equal(la[k], lc[k]), k


# --------------------------------------------------------------------- resume after SIGKILL, every objective
# One driver process (torch imported once) forks a child per training attempt. For each case: a child trains
# uninterrupted; then a chain of children each trains until the checkpoint of its kill point is written
# (mid-epoch checkpoints after every batch: --checkpoint-minutes takes fractions) and SIGKILLs itself, the
# next one resuming from last.pt; a last child resumes to the end. The chain kills mid-epoch 1, exactly
# between epochs 1 and 2, and mid-epoch 2. The parent never trains, so every child starts from the same
# fresh process state. The final parameters must be bitwise equal.

DRIVER = """
import json, os, signal, sys
import torch
torch.set_num_threads(1)
torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])  # the first optimizer imports torch._dynamo (slow)
from searnn.config import build_config
from searnn.train import Trainer, run

cases, chain = json.loads(sys.argv[1]), json.loads(sys.argv[2])
save_last, kill_at = Trainer.save_last, None

def save_then_die(self):
    save_last(self)
    if [self.state.epoch, self.state.batch] == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)

Trainer.save_last = save_then_die

def attempt(values, point):
    pid = os.fork()
    if pid == 0:
        global kill_at
        kill_at = point
        code = 3
        try:
            run(build_config(values))
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if point is None:
        return "" if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0 else f"failed (status {status})"
    if not (os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL):
        return f"the run to be killed at {point} was not killed (status {status})"
    state = torch.load(os.path.join(values["run_dir"], "last.pt"), weights_only=False)["state"]
    return "" if [state["epoch"], state["batch"]] == point else f"killed at {state}, not {point}"

report = {}
for name, values in cases.items():
    errors = [attempt(dict(values, run_dir=values["run_dir"] + "-straight"), None)]
    errors += [attempt(values, point) for point in chain] + [attempt(values, None)]
    report[name] = "; ".join(e for e in errors if e)
print(json.dumps(report))
"""

# (epoch, batch) of LoopState when last.pt is written: (0, 1) after batch 1 of epoch 1, (1, 0) at the end
# of epoch 1, (1, 2) after batch 2 of epoch 2 (3 batches per epoch)
KILL_CHAIN = [[0, 1], [1, 0], [1, 2]]

RESUME_CASES = {
    "mle": {"objective": "mle"},
    "searnn-constant": {"objective": "searnn", "rollin": "mixed", "rollin_ref_prob": 0.5,
                        "rollin_schedule": "constant"},
    "searnn-linear": {"objective": "searnn", "rollin": "mixed", "rollin_ref_prob": 0.9,
                      "rollin_schedule": "linear"},
    "searnn-sigmoid": {"objective": "searnn", "rollin": "mixed", "rollin_ref_prob": 0.9,
                       "rollin_schedule": "sigmoid"},
    "searnn-mixed-sampled": {"objective": "searnn", "rollin": "mixed-cell", "rollin_schedule": "linear",
                             "rollout": "mixed", "mix_per": "rollout", "sample_tokens": "uniform",
                             "num_tokens": 4, "num_cells": 2},
    "searnn-tok": {"objective": "searnn-tok", "rollin": "mixed", "rollin_schedule": "sigmoid",
                   "similarity": "model", "refresh_every": 2},
    "token-smoothing": {"objective": "token-smoothing", "similarity": "model"},
    "seq-smoothing-lazy": {"objective": "seq-smoothing", "lazy": True},
    "seq-smoothing-full": {"objective": "seq-smoothing", "lazy": False},
    "tok-seq": {"objective": "tok-seq", "similarity": "model", "lazy": True},
    "label-smoothing": {"objective": "label-smoothing"},
    "entropy-reg": {"objective": "entropy-reg"},
}
DEFAULT_SUITE = {"mle", "searnn-constant", "searnn-linear", "searnn-sigmoid", "searnn-mixed-sampled",
                 "token-smoothing", "seq-smoothing-lazy", "tok-seq"}
SRC = Path(__file__).resolve().parents[1] / "src"
SIGKILL_TEST = "test_resume_after_sigkill_is_bitwise_exact"


def tiny_tsv(tmp_path: Path) -> dict[str, str]:
    """A tiny ``tsv`` task: 24 training pairs (3 batches of 8), 6 validation and 6 test pairs."""
    rng = random.Random(0)
    files = {}
    for split, n in (("train", 24), ("valid", 6), ("test", 6)):
        words = ["".join(rng.choice("abcde") for _ in range(rng.randint(2, 6))) for _ in range(n)]
        path = tmp_path / f"{split}.tsv"
        path.write_text("".join(f"{w}\t{w[::-1]}\n" for w in words))
        files[split] = str(path)
    return files


@pytest.fixture(scope="module")
def sigkill_runs(request, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """Runs every selected case of the SIGKILL test in one driver process; returns (root, errors by case)."""
    selected = [item.callspec.params["case"] for item in request.session.items
                if getattr(item, "originalname", "") == SIGKILL_TEST]
    root = tmp_path_factory.mktemp("sigkill")
    base = {"task": "tsv", **tiny_tsv(root), "epochs": 2, "batch_size": 8, "hidden": 16, "emb_dim": 16,
            "tgt_emb_dim": 16, "dropout": 0.1, "progress": False, "threads": 1, "checkpoint_minutes": 1e-9}
    cases = {c: {**base, **RESUME_CASES[c], "run_dir": str(root / c)} for c in selected}
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(cases), json.dumps(KILL_CHAIN)],
                          env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root, json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "case", [c if c in DEFAULT_SUITE else pytest.param(c, marks=pytest.mark.slow) for c in RESUME_CASES]
)
def test_resume_after_sigkill_is_bitwise_exact(sigkill_runs, case):
    root, errors = sigkill_runs
    assert errors[case] == ""
    straight = torch.load(root / f"{case}-straight" / "last.pt", weights_only=False)
    killed = torch.load(root / case / "last.pt", weights_only=False)
    assert straight["state"]["epoch"] == killed["state"]["epoch"] == 2
    for k in straight["model"]:
        assert torch.equal(straight["model"][k], killed["model"][k]), k


def test_schedule_progress_is_restored_mid_epoch_and_between_epochs():
    """The regression of the 0.1 parameter gap: the within-epoch counter and the learnt epoch length
    survive a save/restore at any point, so the schedule sees the same progress at every batch."""
    from searnn.search.schedules import Progress

    def trace(stop: tuple[int, int] | None) -> list[float]:
        """Progress values seen by 3 epochs of 4 batches; at ``stop = (epoch, batch)`` the state is saved
        (batch 0: at the end of the previous epoch) and a fresh tracker resumes as the trainer does."""
        p, seen = Progress(), []
        for epoch in range(3):
            if stop == (epoch, 0):
                p = resumed(p)
            p.start_epoch(epoch, 3)
            for batch in range(4):
                if batch and stop == (epoch, batch):
                    p = resumed(p)
                    p.start_epoch(epoch, 3)
                p.step()
                seen.append(p.value)
        return seen

    def resumed(p: Progress) -> Progress:
        fresh = Progress()
        fresh.load_state_dict(p.state_dict())
        return fresh

    straight = trace(None)
    assert straight[5] == pytest.approx((1 + 2 / 4) / 3)
    for stop in [(e, b) for e in range(3) for b in range(4)]:
        assert trace(stop) == straight, stop
    # a last.pt of older versions holds steps_per_epoch only: still loadable
    old = Progress()
    old.load_state_dict({"steps_per_epoch": 4})
    old.start_epoch(1, 3)
    assert old.value == pytest.approx(1 / 3)


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
