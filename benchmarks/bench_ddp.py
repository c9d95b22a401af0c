"""Training throughput of data-parallel ``searnn train --nproc N`` against 1 process (CPU or GPU).

For each objective, trains one epoch of OCR (the first ``--limit-train`` words, global batch
``--batch-size``, the default GRU-128 model, 1 thread per process) once in 1 process and once in ``--nproc``
processes (torchrun, gloo on CPU / NCCL on GPU), and reads the training examples per second that the run
logs in ``metrics.jsonl`` (training time only: no start-up, no evaluation). Prints one line per objective:
examples/s of 1 process, of N processes, and the speed-up.

Usage: ``python benchmarks/bench_ddp.py [--nproc 2] [--limit-train 1024] [--objectives mle,searnn]
[--device cpu] [--json FILE]``. On a shared machine the figures drift with the load; the speed-up is the
number to read, and it cannot exceed the number of free cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def train_throughput(run_dir: Path, objective: str, args: argparse.Namespace, nproc: int) -> float:
    """Examples per second of one epoch of ``searnn train`` in ``nproc`` processes."""
    cmd = [sys.executable, "-m", "searnn.cli", "train", "--task", "ocr", "--objective", objective,
           "--limit-train", str(args.limit_train), "--limit-valid", "8", "--batch-size", str(args.batch_size),
           "--epochs", "1", "--device", args.device, "--no-progress", "--checkpoint-minutes", "0",
           "--run-dir", str(run_dir)]
    if nproc > 1:
        cmd += ["--nproc", str(nproc)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.timeout)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    record = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[0])
    return float(record["examples_per_second"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--limit-train", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--objectives", default="mle,searnn", help="comma-separated objective names")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per training run")
    parser.add_argument("--json", default="", help="also write the figures to this JSON file")
    args = parser.parse_args()
    rows = []
    print(f"OCR, {args.limit_train} words, global batch {args.batch_size}, device {args.device}, "
          f"1 thread per process")
    print(f"{'objective':12s} {'1 proc ex/s':>12s} {f'{args.nproc} proc ex/s':>12s} {'speed-up':>9s}")
    with tempfile.TemporaryDirectory(prefix="bench_ddp_") as tmp:
        for objective in [o for o in args.objectives.split(",") if o]:
            one = train_throughput(Path(tmp) / f"{objective}-1", objective, args, 1)
            many = train_throughput(Path(tmp) / f"{objective}-{args.nproc}", objective, args, args.nproc)
            rows.append({"objective": objective, "one": one, "many": many, "nproc": args.nproc,
                         "speedup": many / one})
            print(f"{objective:12s} {one:12.1f} {many:12.1f} {many / one:9.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": args.device, "limit_train": args.limit_train,
                                               "batch_size": args.batch_size, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
