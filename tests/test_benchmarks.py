"""The benchmark scripts run end to end on a few batches (they print figures; nothing here times anything)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_searnn_speed_benchmark_runs() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_searnn_speed.py"), "--batches", "1"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for row in ("MLE", "SeaRNN full (KL, all tokens)", "SeaRNN sampled (KL, top-k 5)", "SeaRNN full, plain steps"):
        assert row in out
    assert "bare table" in out
