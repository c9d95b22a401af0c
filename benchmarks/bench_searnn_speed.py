"""Speed of SeaRNN against MLE on OCR, and roll-out throughput against a bare decoder loop.

Runs, on the same training batches (OCR, batch 64, the default GRU-128 model; synthetic data with the
same shapes when the OCR task cannot be loaded), one forward + backward + SGD step per batch of:

* MLE (teacher forcing);
* full SeaRNN (learned roll-in, mixed roll-out, KL, every token of every cell: the paper's OCR setting);
* sampled SeaRNN (same, top-k 5 tokens per cell plus the reference token).

It prints seconds per batch and per epoch-equivalent and the ratio to MLE, then the roll-out throughput
(decoder row-steps per second inside the learned roll-outs) against a bare loop of the same decoder
step (embedding, the same GRU layer, output projection, argmax) at the same mean batch size. The
objectives take turns batch by batch, so that a drifting machine load weighs on all alike.

Usage: ``python benchmarks/bench_searnn_speed.py [--batches 30] [--threads 1] [--device cpu]``.
Timings on shared machines drift; the ratios are the meaningful numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import random
import time
import types

import numpy as np
import torch

from searnn import precision
from searnn.data.batch import Batch, Example, make_batches
from searnn.data.task import TaskData
from searnn.data.vocab import Vocab
from searnn.models import ModelConfig, Seq2Seq
from searnn.models.functional import tanh
from searnn.objectives.mle import MleConfig, MleObjective
from searnn.objectives.searnn import SearnnConfig, SearnnObjective

PLAIN = "SeaRNN full, plain steps"
STEP_CONTEXT = contextlib.nullcontext  # --precision: autocast around each objective call (set in main)


def load_ocr(seed: int) -> tuple[TaskData, str]:
    """The OCR task, or synthetic data with its shapes (128 binary pixels, 26 letters, words of 2-14)."""
    try:
        from searnn.data.registry import load_task

        return load_task("ocr"), "ocr"
    except Exception as e:  # noqa: BLE001 - any loader problem: fall back to synthetic data
        print(f"(OCR not available: {e}; using synthetic data)")
    rng = random.Random(seed)
    vocab = Vocab([chr(ord("a") + i) for i in range(26)])
    examples = []
    for _ in range(6000):
        n = min(max(int(rng.gauss(7.6, 2.5)), 2), 14)
        src = (np.random.default_rng(rng.randrange(1 << 30)).random((n, 128)) > 0.5).astype(np.float32)
        examples.append(Example(src, [rng.randrange(4, len(vocab)) for _ in range(n)]))
    task = TaskData(
        name="synthetic-ocr", train=examples, valid=[], test=[], tgt_vocab=vocab, src_vocabs=[],
        src_feature_dim=128, fixed_length=True, metric="hamming", cost="hamming", lower_is_better=True,
        parse_source=lambda line: np.zeros((1, 128), dtype=np.float32), format_output=lambda ids: "",
    )
    return task, "synthetic"


def plain_steps(model: Seq2Seq) -> Seq2Seq:
    """``model`` with the eval-mode fast steps turned off: every roll-out step goes through ``step``
    (``step_cached`` -> ``step``, ``step_shared`` -> index + ``step``), projecting every row's embedding,
    indexing the state per candidate and using ``nn.GRU`` (with torch's own tanh)."""
    model.step_cached = types.MethodType(lambda self, enc, state, tokens, gates: self.step(enc, state, tokens), model)
    model.step_shared = types.MethodType(
        lambda self, enc, state, tokens, rows: self.step(enc, state.index(rows), tokens), model
    )
    return model


def time_objectives(
    objectives: dict, model: Seq2Seq, batches: list[Batch], warmup: int = 2, patches: dict | None = None
):
    """Seconds per batch (objective + backward + SGD step) of every objective, and their summed logs.

    The objectives take turns batch by batch (each on its own copy of the model, passed through
    ``patches[name]`` when given), so that the load of a shared machine drifting during the run weighs on
    all of them alike."""
    patches = patches or {}
    models = {name: patches.get(name, lambda m: m)(copy.deepcopy(model)) for name in objectives}
    opts = {name: torch.optim.SGD(m.parameters(), lr=1e-3) for name, m in models.items()}  # small steps
    seconds = dict.fromkeys(objectives, 0.0)
    logs: dict[str, dict[str, float]] = {name: {} for name in objectives}
    for i, batch in enumerate([*batches[:warmup], *batches]):
        for name, objective in objectives.items():
            sync(batch)
            start = time.perf_counter()
            with STEP_CONTEXT():
                out = objective(models[name], batch)
            opts[name].zero_grad(set_to_none=True)
            out.loss.backward()
            opts[name].step()
            sync(batch)
            if i >= warmup:
                seconds[name] += time.perf_counter() - start
                for k, v in out.logs.items():
                    logs[name][k] = logs[name].get(k, 0.0) + v
    return {name: (seconds[name] / len(batches), logs[name]) for name in objectives}


def sync(batch: Batch) -> None:
    if batch.tgt.is_cuda:
        torch.cuda.synchronize()


@torch.no_grad()
def bare_loop(model: Seq2Seq, rows: int, calls: int, device: torch.device, table: bool = False) -> float:
    """Row-steps per second of a bare greedy loop of the decoder's own modules at ``rows`` rows: embedding,
    ``nn.GRU`` step, projection, argmax; with ``table`` the same GRU written out with the token input
    projection looked up in a precomputed ``(V, 3H)`` table and the fast tanh (the algebra of
    ``Seq2Seq.step_cached``)."""
    model.eval()
    rnn, emb, out = model.rnns[0], model.tgt_embedding, model.out
    hid = model.cfg.hidden
    gates = torch.nn.functional.linear(emb.weight, rnn.weight_ih_l0, rnn.bias_ih_l0)
    h = torch.zeros(1, rows, hid, device=device)
    tok = torch.full((rows,), 4, dtype=torch.long, device=device)
    for i in range(calls + 3):
        if i == 3:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        if table:
            gx = gates.index_select(0, tok)
            gh = torch.nn.functional.linear(h[0], rnn.weight_hh_l0, rnn.bias_hh_l0)
            rz = torch.sigmoid(gx[:, : 2 * hid] + gh[:, : 2 * hid])
            n = tanh(torch.addcmul(gx[:, 2 * hid :], rz[:, :hid], gh[:, 2 * hid :]))
            h = torch.lerp(n, h[0], rz[:, hid:])[None]
            tok = out(h[0]).argmax(-1)
            continue
        y, h = rnn(emb(tok)[:, None], h)
        tok = out(y[:, 0]).argmax(-1)
    if device.type == "cuda":
        torch.cuda.synchronize()
    model.train()
    return rows * calls / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=30, help="timed batches per objective")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0 = torch default)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"], help="autocast dtype")
    args = parser.parse_args()
    global STEP_CONTEXT
    STEP_CONTEXT = functools.partial(precision.autocast, args.precision, torch.device(args.device))
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    task, source = load_ocr(args.seed)
    all_batches = list(make_batches(task.train, args.batch_size, shuffle=True, seed=args.seed))
    batches = [b.to(device) for b in all_batches[: args.batches + 2]]
    per_epoch = len(all_batches)
    torch.manual_seed(args.seed)
    model = Seq2Seq(ModelConfig(), [], task.src_feature_dim, len(task.tgt_vocab)).to(device)
    model.train()
    print(
        f"data {source}: {len(task.train)} train words, {per_epoch} batches of {args.batch_size}/epoch; "
        f"timing {args.batches} batches; device {device}, threads {torch.get_num_threads()}"
    )

    runs = {
        "MLE": MleObjective(MleConfig(), task),
        "SeaRNN full (KL, all tokens)": SearnnObjective(SearnnConfig(), task),
        "SeaRNN sampled (KL, top-k 5)": SearnnObjective(SearnnConfig(sample_tokens="topk", num_tokens=5), task),
        PLAIN: SearnnObjective(SearnnConfig(), task),
    }
    results = time_objectives(runs, model, batches, patches={PLAIN: plain_steps})

    mle_s = results["MLE"][0]
    print(
        f"\n{'objective':32s} {'s/batch':>9s} {'s/epoch':>9s} {'x MLE':>7s} {'roll-outs/batch':>16s} "
        f"{'decoded/batch':>14s} {'row-steps/batch':>16s} {'in roll-outs':>13s}"
    )
    for name, (sec, logs) in results.items():
        n = len(batches)
        rollouts, decoded = logs.get("rollouts", 0.0) / n, logs.get("rollouts_learned", 0.0) / n
        steps, share = logs.get("rollout_steps", 0.0) / n, logs.get("rollout_s", 0.0) / n / sec
        print(
            f"{name:32s} {sec:9.4f} {sec * per_epoch:9.1f} {sec / mle_s:7.2f} {rollouts:16.0f} "
            f"{decoded:14.0f} {steps:16.0f} {share:13.0%}"
        )

    print(
        f"\n{'roll-out throughput':32s} {'rows/step':>9s} {'steps/s':>12s} {'bare loop':>12s} {'ratio':>7s} "
        f"{'bare table':>12s} {'ratio':>7s}"
    )
    for name, (_, logs) in list(results.items())[1:]:
        steps, calls, secs = logs["rollout_steps"], logs["rollout_calls"], logs["rollout_s"]
        rows = max(int(round(steps / max(calls, 1))), 1)
        engine = steps / max(secs, 1e-9)
        bare = bare_loop(model, rows, int(calls), device)
        table = bare_loop(model, rows, int(calls), device, table=True)
        print(
            f"{name:32s} {rows:9d} {engine:12.0f} {bare:12.0f} {engine / bare:7.2f} {table:12.0f} "
            f"{engine / table:7.2f}"
        )
    print(
        "\nroll-outs: completed (example, cell, token) candidates; decoded: learned roll-outs run through "
        "the decoder (the others are reference completions, EOS or last-cell candidates, or copies of the "
        "roll-in); in roll-outs: share of the time spent decoding them."
        "\nsteps/s: decoder row-steps per second inside the learned roll-outs (state gathering, greedy "
        "decoding with shrinking batches, writing the outputs); bare loop: embedding + GRU + projection + "
        "argmax at a fixed batch of the same mean size; bare table: the same loop with the token input "
        "projection looked up in a (V, 3H) table, as the engine does (Seq2Seq.step_cached)."
        f"\n{PLAIN!r}: full SeaRNN with the fast steps turned off (step_cached and step_shared -> step)."
    )


if __name__ == "__main__":
    main()
