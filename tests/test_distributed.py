"""Data-parallel training (searnn.distributed) with 2 gloo processes on CPU, against 1 process.

* the parameters after an epoch of k steps equal the single-process ones with the same global batch (MLE
  under the three normalisations, with a last batch smaller than the world size; a SeaRNN configuration
  whose search draws nothing: reference roll-in and roll-out, every token);
* sharded evaluation gives exactly the single-process scores (OCR CER, chunking F1);
* a rank killed mid-epoch ends the job with a clear error, the same command resumes, and a 2-process
  checkpoint resumes in 1 process.
Plus the pieces, without processes: sharding, per-rank seeds, the --nproc command line, --precision.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
import warnings
from pathlib import Path

import pytest
import torch

from searnn import distributed
from searnn.config import build_config
from searnn.data.batch import collate, make_batches
from searnn.errors import ConfigError, SearnnError
from searnn.evaluate import evaluate
from searnn.train import Trainer

TINY = {"task": "ocr", "limit_train": 65, "limit_valid": 24, "epochs": 1, "batch_size": 16, "hidden": 16,
        "emb_dim": 16, "tgt_emb_dim": 16, "progress": False, "checkpoint_minutes": 0.0, "optimizer": "sgd",
        "lr": 0.5, "momentum": 0.5, "eval_batch_size": 7}
"""65 words in global batches of 16: 5 steps, the last one a single word (rank 1 trains a stand-in row with
weight 0). SGD: Adam's first steps are nearly ``lr * sign(g)``, which turns float rounding of near-zero
gradients into lr-sized differences, so the comparison to 1e-6 is made with SGD (with momentum)."""

SEARNN_DETERMINISTIC = {"objective": "searnn", "rollin": "reference", "rollout": "reference",
                        "sample_tokens": "all", "num_cells": 0, "normalization": "cell-global"}

CASES = {
    "mle-cell-per-seq": {"normalization": "cell-per-seq"},
    "mle-cell-global": {"normalization": "cell-global"},
    "mle-batch": {"normalization": "batch"},
    "searnn-ref-ref": SEARNN_DETERMINISTIC,
}
EVAL_CASES = {"ocr": {"limit_valid": 40}, "tsv-bleu": {"task": "tsv", "tokenize": "space", "metric": "bleu",
                                                        "limit_train": 0, "limit_valid": 0}}


def write_reversal_data(root: Path, train: int = 200, held: int = 23) -> dict[str, str]:
    """A tiny tab-separated task (reverse a string of letters): the tsv task's file options."""
    import random

    rng = random.Random(0)
    paths = {}
    for split, n in (("train", train), ("valid", held), ("test", held)):
        lines = []
        for _ in range(n):
            words = [rng.choice("abcdefgh") for _ in range(rng.randint(2, 7))]
            lines.append(" ".join(words) + "\t" + " ".join(reversed(words)))
        path = root / f"{split}.tsv"
        path.write_text("\n".join(lines) + "\n")
        paths[split] = str(path)
    return paths

WORKER = textwrap.dedent("""
    import json, sys
    import torch
    from searnn import distributed
    from searnn.config import build_config
    from searnn.evaluate import evaluate
    from searnn.train import Trainer

    spec = json.loads(open(sys.argv[1]).read())
    torch.set_num_threads(1)
    distributed.setup(torch.device("cpu"))
    ctx = distributed.current()
    for name, case in spec.items():
        cfg = build_config(case["values"])
        trainer = Trainer(cfg)
        trainer.state.train_seconds = case.get("skew", 0.0) * ctx.rank  # clocks that disagree
        finished = trainer.train_epoch(0) if case["train"] else None
        result = evaluate(trainer.model, trainer.task, "valid", cfg.train, trainer.device,
                          limit=cfg.train.limit_valid)
        calls = distributed.gather_in_order([ctx.rank], [trainer.objective.step_count], ctx.world)
        if ctx.is_main:
            torch.save({"model": trainer.model.state_dict(), "eval": json.dumps(result, sort_keys=True),
                        "world": ctx.world, "calls": calls, "finished": finished,
                        "batches": trainer.state.batch}, case["out"])
    distributed.teardown()
""")


def torchrun(script: Path, *args: str, nproc: int = 2, timeout: float = 240) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           str(script), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SEARNN_DIST_TIMEOUT": "120"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def two_process_runs(tmp_path_factory):
    """One torchrun of 2 processes training / evaluating every case; returns {case: saved dict}."""
    root = tmp_path_factory.mktemp("ddp")
    EVAL_CASES["tsv-bleu"].update(write_reversal_data(root))
    spec = {}
    for name, extra in CASES.items():
        spec[name] = {"values": {**TINY, **extra, "run_dir": str(root / name)}, "train": True,
                      "out": str(root / f"{name}.pt")}
    for name, extra in EVAL_CASES.items():
        spec["eval-" + name] = {"values": {**TINY, **extra, "run_dir": str(root / ("eval-" + name))},
                                "train": name == "ocr", "out": str(root / f"eval-{name}.pt")}
    spec["budget"] = {"values": {**TINY, "time_budget": 500.0, "run_dir": str(root / "budget")}, "train": True,
                      "out": str(root / "budget.pt"), "skew": 1000.0}
    (root / "spec.json").write_text(json.dumps(spec))
    (root / "worker.py").write_text(WORKER)
    proc = torchrun(root / "worker.py", str(root / "spec.json"))
    if proc.returncode != 0:  # once, on a machine shared with other jobs, a launch failed: show it, try again
        warnings.warn(f"torchrun failed once (status {proc.returncode}), retrying: {proc.stderr[-1500:]}",
                      stacklevel=1)
        proc = torchrun(root / "worker.py", str(root / "spec.json"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {name: torch.load(case["out"], weights_only=True) for name, case in spec.items()}


def single_process(tmp_path: Path, values: dict, train: bool = True) -> tuple[dict, str]:
    trainer = Trainer(build_config({**values, "run_dir": str(tmp_path / "single")}))
    if train:
        trainer.train_epoch(0)
    result = evaluate(trainer.model, trainer.task, "valid", trainer.cfg.train, trainer.device,
                      limit=trainer.cfg.train.limit_valid)
    return trainer.model.state_dict(), json.dumps(result, sort_keys=True)


@pytest.mark.parametrize("case", list(CASES))
def test_two_processes_train_the_same_parameters_as_one(two_process_runs, tmp_path, case):
    got = two_process_runs[case]
    assert got["world"] == 2
    want, _ = single_process(tmp_path, {**TINY, **CASES[case]})
    initial = Trainer(build_config({**TINY, **CASES[case], "run_dir": str(tmp_path / "init")})).model.state_dict()
    moved = max(float((want[k] - initial[k]).abs().max()) for k in want)
    assert moved > 1e-2  # the steps did train (the comparison below is not vacuous)
    for key in want:
        assert torch.allclose(got["model"][key], want[key], atol=1e-6, rtol=0), key
    if CASES[case].get("objective") == "searnn":  # rank 1 had no row in the last batch: it still counted it
        assert got["calls"] == [5, 5]


@pytest.mark.parametrize("task", list(EVAL_CASES))
def test_sharded_evaluation_equals_single_process_exactly(two_process_runs, tmp_path, task):
    got = two_process_runs["eval-" + task]
    values = {**TINY, **EVAL_CASES[task]}
    params, want = single_process(tmp_path, values, train=task == "ocr")
    if task == "ocr":  # the trained model decodes real outputs; evaluate the 2-process model in 1 process too
        trainer = Trainer(build_config({**values, "run_dir": str(tmp_path / "same")}))
        trainer.model.load_state_dict(got["model"])
        want = json.dumps(evaluate(trainer.model, trainer.task, "valid", trainer.cfg.train, trainer.device,
                                   limit=values["limit_valid"]), sort_keys=True)
    assert got["eval"] == want


def test_the_time_budget_stops_every_process_at_the_same_batch(two_process_runs):
    """Rank 0 has trained 0 s, rank 1 1000 s (clocks disagree): both compare the mean, 500 s, with the
    500 s budget and stop after the first batch (a rank stopping alone would leave the other waiting)."""
    got = two_process_runs["budget"]
    assert got["finished"] is False and got["batches"] == 1


# ------------------------------------------------------------------------------ failure and resumption


def _pids_with_tag(tag: str, rank: str) -> list[int]:
    """Processes whose environment holds ``SEARNN_TEST_TAG=tag`` and ``RANK=rank``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"SEARNN_TEST_TAG={tag}".encode() in env and f"RANK={rank}".encode() in env:
            found.append(int(entry.name))
    return found


@pytest.mark.slow  # about 30 s on 2 cores: three torchrun/searnn launches (run with -m slow)
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc to find the rank to kill")
def test_killed_rank_stops_the_job_then_resumes_on_two_and_on_one_process(tmp_path):
    run_dir = tmp_path / "run"
    data = write_reversal_data(tmp_path, train=400)
    args = ["--task", "tsv", "--train", data["train"], "--valid", data["valid"], "--test", data["test"],
            "--batch-size", "4", "--hidden", "8", "--emb-dim", "8", "--tgt-emb-dim", "8", "--no-progress",
            "--checkpoint-minutes", "0.0005", "--max-decode-len", "12", "--epochs", "1", "--run-dir", str(run_dir)]
    cmd = [sys.executable, "-m", "searnn.cli", "train", *args]
    tag = uuid.uuid4().hex
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SEARNN_DIST_TIMEOUT": "60", "SEARNN_TEST_TAG": tag}
    proc = subprocess.Popen([*cmd, "--nproc", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    try:
        deadline = time.monotonic() + 120
        while not (run_dir / "last.pt").exists():  # mid-epoch checkpoints are being written
            assert proc.poll() is None and time.monotonic() < deadline, "the run ended before a checkpoint"
            time.sleep(0.05)
        victims = _pids_with_tag(tag, "1")
        assert victims, "rank 1 not found"
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    last_line = err.strip().splitlines()[-1]
    assert last_line.startswith("searnn train: error: --nproc 2: a training process failed"), err[-2000:]
    assert "resume" in last_line
    assert not (run_dir / "results.json").exists()
    saved = torch.load(run_dir / "last.pt", weights_only=True)
    assert 0 < saved["state"]["batch"] < 100 and saved["state"]["epoch"] == 0
    again = subprocess.run([*cmd, "--nproc", "2"], capture_output=True, text=True, env=env, timeout=240)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resuming" in again.stderr and json.loads((run_dir / "results.json").read_text())["epochs"] == 1
    assert torch.load(run_dir / "last.pt", weights_only=True)["world_size"] == 2
    # a 2-process checkpoint resumes in 1 process (one more epoch)
    one = subprocess.run([*cmd[:-4], "--epochs", "2", "--run-dir", str(run_dir)], capture_output=True,
                         text=True, env=env, timeout=240)
    assert one.returncode == 0, one.stderr[-2000:]
    assert "resuming" in one.stderr
    results = json.loads((run_dir / "results.json").read_text())
    assert results["epochs"] == 2 and "world_size" not in results
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]


# ------------------------------------------------------------------------------ pieces, no processes


def _examples(task_values: dict):
    from searnn.data.registry import load_task

    cfg = build_config(task_values)
    return load_task(cfg.train.task, cfg.task).train


def test_shards_partition_every_global_batch_and_trim_padding():
    examples = _examples({**TINY, "limit_train": 40})
    for world in (1, 2, 3):
        for batch in make_batches(examples, 9, shuffle=True, seed=3):
            rows: list[int] = []
            for rank in range(world):
                part = distributed.shard_batch(batch, distributed.Context(rank, world))
                want_rows = list(range(rank, batch.size, world))
                if not want_rows:
                    assert part is None
                    continue
                rows += part.index.tolist()
                direct = collate([examples[i] for i in batch.index[want_rows].tolist()],
                                 batch.index[want_rows].tolist())
                for name in ("src", "src_len", "tgt", "tgt_len", "index"):
                    assert torch.equal(getattr(part, name), getattr(direct, name)), name
            assert sorted(rows) == sorted(batch.index.tolist())


def test_each_rank_has_its_own_reproducible_stream():
    seeds = {distributed.batch_seed(1, e, b, r) for e in range(3) for b in range(5) for r in range(4)}
    assert len(seeds) == 60
    assert distributed.batch_seed(7, 2, 3, 1) == distributed.batch_seed(7, 2, 3, 1)
    distributed.seed_batch(1, 0, 0, distributed.Context(1, 2))
    a = torch.rand(3)
    distributed.seed_batch(1, 0, 0, distributed.Context(0, 2))
    b = torch.rand(3)
    distributed.seed_batch(1, 0, 0, distributed.Context(1, 2))
    assert torch.equal(a, torch.rand(3)) and not torch.equal(a, b)


def test_nproc_shortcut_runs_torchrun_without_nproc():
    argv = ["--task", "ocr", "--nproc", "2", "--run-dir", "r", "--nproc=3", "--lr", "0.1"]
    cmd = distributed.torchrun_command(argv, 2)
    assert cmd[1:3] == ["-m", "torch.distributed.run"] and "--nproc_per_node=2" in cmd
    assert cmd[cmd.index("searnn.cli"):] == ["searnn.cli", "train", "--task", "ocr", "--run-dir", "r", "--lr", "0.1"]


def test_nproc_on_cuda_needs_as_many_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(SearnnError, match="--nproc 2 needs 2 GPUs with --device cuda, this machine has 1"):
        distributed.check_nproc(2, "cuda")
    with pytest.raises(SearnnError, match="--nproc 2 needs 2 GPUs with --device auto"):
        distributed.check_nproc(2, "auto")
    with pytest.raises(SearnnError, match="use --device cuda"):
        distributed.check_nproc(2, "cuda:1")
    distributed.check_nproc(2, "cpu")
    distributed.check_nproc(1, "cuda")


def test_a_second_sigterm_does_not_break_the_interrupted_save():
    before = signal.getsignal(signal.SIGTERM)
    with distributed.sigterm_ignored():
        os.kill(os.getpid(), signal.SIGTERM)  # would end this process without the guard
        time.sleep(0.01)
    assert signal.getsignal(signal.SIGTERM) == before


def test_outside_torchrun_nothing_is_distributed(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not distributed.launched_by_torchrun()
    assert distributed.env_context() == distributed.SINGLE and not distributed.current().enabled
    assert distributed.gather_in_order([2, 0, 1], ["c", "a", "b"], 3) == ["a", "b", "c"]


def test_bad_nproc_and_precision_are_one_line_errors(tmp_path, capsys):
    from searnn.cli import main as cli

    for option, value, message in (("--nproc", "0", "--nproc must be >= 1"),
                                   ("--precision", "fp8", "unknown --precision 'fp8'; valid: fp32, bf16, fp16"),
                                   ("--precision", "fp16", "--precision fp16 needs a CUDA device"),
                                   ("--precision", "fp16 --nproc 2", "--precision fp16 needs a CUDA device")):
        code = cli(["train", "--task", "ocr", "--device", "cpu", "--limit-train", "8", "--no-progress",
                    "--run-dir", str(tmp_path / "r"), option, *value.split()])
        err = capsys.readouterr().err
        assert code == 1 and message in err, err
        assert len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "r" / "config.yaml").exists()  # refused before the run dir is written


def test_bf16_on_cpu_trains_with_autocast(tmp_path, monkeypatch):
    seen = []
    original = torch.autocast.__init__

    def spy(self, device_type, dtype=None, *args, **kwargs):
        seen.append((device_type, dtype))
        original(self, device_type, dtype, *args, **kwargs)

    monkeypatch.setattr(torch.autocast, "__init__", spy)
    trainer = Trainer(build_config({**TINY, "limit_train": 32, "precision": "bf16", "device": "cpu",
                                    "run_dir": str(tmp_path / "bf16")}))
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.train_epoch(0)
    assert ("cpu", torch.bfloat16) in seen
    after = trainer.model.state_dict()
    assert all(v.dtype == torch.float32 for v in after.values())
    assert any(not torch.equal(before[k], after[k]) for k in after)


def test_precision_and_nproc_may_change_on_resume():
    from searnn.checkpoint import config_differences

    a = build_config({"task": "ocr", "nproc": 2, "precision": "bf16"})
    b = build_config({"task": "ocr"})
    assert config_differences(a, b) == []


def test_config_error_for_precision_is_a_config_error():
    with pytest.raises(ConfigError, match="--precision"):
        build_config({"task": "ocr", "precision": "half"})
