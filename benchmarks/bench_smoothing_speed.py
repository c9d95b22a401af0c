"""Seconds per training batch of the loss-smoothing objectives, as a ratio to MLE.

One run, the same Multi30k De->En batches and the same small model for every objective. A training step
is forward + loss + backward + SGD step. Objectives are timed in interleaved rounds (each round runs every
objective on the same batches) so that load drifts from other processes hit all of them alike; the
report gives the median and the minimum over rounds of the seconds per batch, each as a ratio to MLE's
(on a shared machine the minimum is the less noisy of the two). On CPU with one thread the clock is the
process's CPU time, which other jobs on the machine disturb much less than elapsed time.

Elbayad et al. (2018, sec. 3.4) claim lazy sequence smoothing costs about as much as MLE; the target
here is lazy <= 1.15 x MLE.

    python benchmarks/bench_smoothing_speed.py [--batches 10] [--rounds 5] [--batch-size 64] [--threads 1]
    python benchmarks/bench_smoothing_speed.py --device cuda
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable

import torch

from searnn.data.batch import make_batches
from searnn.data.registry import load_task
from searnn.data.translation import TranslationConfig
from searnn.models import ModelConfig, Seq2Seq
from searnn.objectives.baselines import EntropyRegConfig, EntropyRegularized, LabelSmoothing, LabelSmoothingConfig
from searnn.objectives.mle import MleConfig, MleObjective
from searnn.objectives.seq_smoothing import SeqSmoothing, SeqSmoothingConfig, TokSeq, TokSeqConfig
from searnn.objectives.token_smoothing import TokenSmoothing, TokenSmoothingConfig


def objectives(task) -> dict[str, Callable]:
    """name -> objective, all built once (similarities and document frequencies precomputed)."""
    specs = {
        "mle": (MleObjective, MleConfig()),
        "label-smoothing": (LabelSmoothing, LabelSmoothingConfig()),
        "entropy-reg": (EntropyRegularized, EntropyRegConfig()),
        "token-smoothing (glove, k=50)": (TokenSmoothing, TokenSmoothingConfig(similarity="glove")),
        "seq lazy hamming V_batch L=5": (SeqSmoothing, SeqSmoothingConfig(reward="hamming")),
        "seq lazy bleu V_batch L=5": (SeqSmoothing, SeqSmoothingConfig(reward="bleu")),
        "seq lazy cider V_batch L=5": (SeqSmoothing, SeqSmoothingConfig(reward="cider")),
        "tok-seq lazy bleu L=5": (TokSeq, TokSeqConfig(reward="bleu")),
        "seq full hamming V_batch L=5": (SeqSmoothing, SeqSmoothingConfig(reward="hamming", lazy=False)),
        "seq full bleu V_batch L=5": (SeqSmoothing, SeqSmoothingConfig(reward="bleu", lazy=False)),
    }
    return {name: cls(cfg, task) for name, (cls, cfg) in specs.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, default=10, help="batches per objective per round")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--hidden", type=int, default=128, help="model size (GRU, additive attention)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (0 = torch's default)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--limit-train", type=int, default=0, help="load only the first N training pairs")
    ap.add_argument(
        "--clock", choices=("auto", "process", "wall"), default="auto",
        help="process = CPU time of this process (robust to other jobs on a shared CPU), wall = elapsed; "
        "auto = process on CPU with one thread, wall otherwise",
    )
    ap.add_argument("--json", default="", help="also write the results to this file")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)

    task = load_task("translation", TranslationConfig(limit_train=args.limit_train))
    cfg = ModelConfig(hidden=args.hidden, emb_dim=args.hidden, tgt_emb_dim=args.hidden, attention="additive")
    model = Seq2Seq(cfg, [len(v) for v in task.src_vocabs], None, len(task.tgt_vocab)).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    stream = make_batches(task.train, args.batch_size, shuffle=True, seed=0)
    batches = [b.to(device) for _, b in zip(range(args.batches), stream, strict=False)]
    t0 = time.perf_counter()
    objs = objectives(task)
    setup_s = time.perf_counter() - t0

    def step(obj, batch) -> None:
        out = obj(model, batch)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    use_process = args.clock == "process" or (
        args.clock == "auto" and device.type == "cpu" and torch.get_num_threads() == 1
    )
    clock = time.process_time if use_process else time.perf_counter
    for obj in objs.values():  # warm-up: first-call builds (similarity tables, caches)
        step(obj, batches[0])
    times: dict[str, list[float]] = {name: [] for name in objs}
    for _ in range(args.rounds):
        for name, obj in objs.items():
            sync()
            start = clock()
            for b in batches:
                step(obj, b)
            sync()
            times[name].append((clock() - start) / len(batches))

    mle_med, mle_min = statistics.median(times["mle"]), min(times["mle"])
    rows = []
    print(f"device={device} threads={torch.get_num_threads()} batch={args.batch_size} hidden={args.hidden} "
          f"V={len(task.tgt_vocab)} batches={args.batches} rounds={args.rounds} setup={setup_s:.1f}s "
          f"clock={'process' if use_process else 'wall'} "
          f"torch={torch.__version__} {platform.processor() or platform.machine()}")
    print(f"{'objective':34s} {'median s':>9s} {'ratio':>6s} {'min s':>8s} {'ratio':>6s}")
    for name, ts in times.items():
        med, low = statistics.median(ts), min(ts)
        rows.append({"objective": name, "median_s_per_batch": med, "ratio_median": med / mle_med,
                     "min_s_per_batch": low, "ratio_min": low / mle_min, "rounds": ts})
        print(f"{name:34s} {med:9.4f} {med / mle_med:6.2f} {low:8.4f} {low / mle_min:6.2f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"args": vars(args), "device": str(device), "results": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
