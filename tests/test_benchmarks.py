"""The benchmark scripts run end to end on a few batches (they print figures; nothing here times anything)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_searnn_speed_benchmark_runs() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_searnn_speed.py"), "--batches", "1", "--static-shapes", "on"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for row in ("MLE", "SeaRNN full (KL, all tokens)", "SeaRNN sampled (KL, top-k 5)", "SeaRNN full, plain steps",
                "static: SeaRNN full (KL, all tokens)", "static: SeaRNN sampled (KL, top-k 5)"):
        assert row in out
    assert "bare table" in out


def run_bench(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_searnn_speed.py"), *args],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_searnn_speed_benchmark_translation_profile_runs() -> None:
    out = run_bench("--task", "translation", "--batches", "1", "--warmup", "0", "--batch-size", "8", "--profile")
    for row in ("SeaRNN s9 full vocabulary", "SeaRNN s9 shortlist", "roll-outs: output projection",
                "roll-outs: argmax", "roll-out row-steps per batch", "backward", "peak RSS"):
        assert row in out


def test_searnn_speed_benchmark_large_vocabulary_runs() -> None:
    out = run_bench("--task", "large", "--batches", "1", "--warmup", "0", "--batch-size", "8")
    assert "30000 target ids" in out and "SeaRNN s9 shortlist" in out and "peak RSS" in out


def test_searnn_speed_benchmark_transformer_runs() -> None:
    out = run_bench("--arch", "transformer", "--batches", "1", "--warmup", "0", "--batch-size", "8")
    assert "transformer model of" in out
    assert "SeaRNN full (KL, all tokens)" in out and "SeaRNN sampled (KL, top-k 5)" in out
    assert "plain steps" not in out and "bare table" not in out
