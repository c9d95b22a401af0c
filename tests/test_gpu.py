"""GPU readiness (marked ``cuda``, skipped without a CUDA device; run by benchmarks/gpu_check.sh).

* the SeaRNN search (roll-in, roll-outs, costs) runs without a host synchronisation
  (``torch.cuda.set_sync_debug_mode("error")`` turns any sync into an error naming its line): the static-shape
  search, which ``--static-shapes auto`` picks on CUDA; the CPU detector (:mod:`searnn.syncguard`) agrees;
* ``--precision bf16`` and ``fp16`` (with its gradient scaler) train on CUDA with fp32 parameters;
* with 2 GPUs, 2 NCCL processes train the parameters of 1 process (same global batch).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from searnn.config import build_config
from searnn.data.batch import make_batches
from searnn.syncguard import SyncGuard
from searnn.train import Trainer

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

SMALL = {"task": "ocr", "limit_train": 128, "limit_valid": 32, "epochs": 1, "batch_size": 32, "progress": False,
         "checkpoint_minutes": 0.0, "device": "cuda"}


@pytest.mark.parametrize("objective", [
    {"objective": "searnn"},  # learned roll-in, mixed roll-out, every token
    {"objective": "searnn", "sample_tokens": "topk", "num_tokens": 5, "rollin": "mixed"},
])
def test_searnn_search_makes_no_host_synchronisation(tmp_path, objective):
    trainer = Trainer(build_config({**SMALL, **objective, "run_dir": str(tmp_path / "run")}))
    batch = next(iter(make_batches(trainer.task.train, 32, shuffle=True, seed=1))).to(trainer.device)
    trainer.objective.search(trainer.model, batch)  # warm-up (lazy CUDA initialisation, caches)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        result = trainer.objective.search(trainer.model, batch)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert result.costs.is_cuda
    assert result.candidates.valid is not None  # auto: the static-shape search on CUDA
    with SyncGuard() as guard:  # the CPU detector, run on the GPU, finds nothing either
        trainer.objective.search(trainer.model, batch)
    assert not guard.events, guard.report()


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_on_cuda(tmp_path, precision):
    trainer = Trainer(build_config({**SMALL, "objective": "searnn", "precision": precision,
                                    "run_dir": str(tmp_path / precision)}))
    assert (trainer.scaler is not None) == (precision == "fp16")
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.train_epoch(0)
    after = trainer.model.state_dict()
    assert all(v.dtype == torch.float32 and bool(torch.isfinite(v).all()) for v in after.values())
    assert any(not torch.equal(before[k], after[k]) for k in after)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs")
def test_two_gpus_train_the_parameters_of_one(tmp_path):
    values = {**SMALL, "optimizer": "sgd", "lr": 0.5, "hidden": 32}
    args = [f"--{k.replace('_', '-')}={v}" for k, v in values.items() if k != "progress"] + ["--no-progress"]
    env = {**os.environ, "SEARNN_DIST_TIMEOUT": "120"}
    two = subprocess.run([sys.executable, "-m", "searnn.cli", "train", *args, "--nproc", "2",
                          "--run-dir", str(tmp_path / "two")], capture_output=True, text=True, env=env, timeout=400)
    assert two.returncode == 0, two.stderr[-3000:]
    one = subprocess.run([sys.executable, "-m", "searnn.cli", "train", *args, "--run-dir", str(tmp_path / "one")],
                         capture_output=True, text=True, env=env, timeout=400)
    assert one.returncode == 0, one.stderr[-3000:]
    a = torch.load(tmp_path / "two" / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "one" / "last.pt", weights_only=True)["model"]
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert worst < 1e-4, worst  # TF32 / kernel choices differ between batch shapes on GPUs
    assert json.loads((tmp_path / "two" / "results.json").read_text())["world_size"] == 2
