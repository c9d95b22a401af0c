"""Speed of SeaRNN against MLE (OCR, Multi30k, a synthetic 30k-word vocabulary), with a profile.

``--task ocr`` (default) runs, on the same training batches (OCR, batch 64, the default GRU-128 model;
synthetic data with the same shapes when the OCR task cannot be loaded), one forward + backward + SGD
step per batch of:

* MLE (teacher forcing);
* full SeaRNN (learned roll-in, mixed roll-out, KL, every token of every cell: the paper's OCR setting);
* the same with PAD and BOS (never emitted) neither rolled out nor in the loss (``special_tokens=drop``);
* sampled SeaRNN (same, top-k 5 tokens per cell plus the reference token).

``--task translation``: Multi30k (first 10,000 pairs, 5,917 target words), the section-9 model (bi-GRU
128 encoder, GRU 128 decoder, additive attention, dropout 0.3) and SeaRNN settings (reference roll-in,
mixed roll-out, sKL 200, BLEU cost, top-15 tokens plus the reference tokens within +-5, 20 cells), with
full-vocabulary and shortlisted roll-outs. ``--task large``: the same model and settings on synthetic
pairs over a 30,000-word vocabulary (shortlisted roll-outs), reporting the peak RSS. ``--pretrain N``
first trains the model for N MLE batches (Adam 1e-3), so that its roll-outs stop at EOS like a
trained model's instead of running to the length cap.

``--profile`` also prints where a SeaRNN batch goes (the regions of :mod:`searnn.profiling`: roll-in;
roll-outs split into recurrent step, attention, output projection, argmax and bookkeeping; the oracle's
completions; the cost; the loss; the backward pass), and the roll-out row-steps per batch.

It prints seconds per batch and per epoch-equivalent and the ratio to MLE, then the roll-out throughput
(decoder row-steps per second inside the learned roll-outs) against a bare loop of the same decoder
step (embedding, the same GRU layer, output projection, argmax) at the same mean batch size. The
objectives take turns batch by batch, so that a drifting machine load weighs on all alike.

``--arch transformer`` runs the same objectives with the pre-LayerNorm Transformer of
configs/experiments/transformer.yaml instead (OCR: d=64, 4 heads, feed-forward 256, 2+2 layers, aligned
input; translation: d=128, same otherwise); the RNN-only rows (plain decoder steps, the bare GRU loop) are
left out, and ``benchmarks/bench_transformer.py`` compares its roll-outs with a bare incremental loop.

Usage: ``python benchmarks/bench_searnn_speed.py [--task ocr|translation|large] [--arch rnn|transformer]
[--batches 30] [--threads 1] [--device cpu] [--pretrain 0] [--profile] [--static-shapes off|on]``.
``--static-shapes on`` also times the static-shape search engine (the CUDA default,
:mod:`searnn.search.static`) on the same settings; the other SeaRNN runs use the dynamic engine on every device.
Timings on shared machines drift; the ratios are the meaningful numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import functools
import random
import resource
import time
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from searnn import precision
from searnn.checkpoint import atomic_save, load_checkpoint
from searnn.data.batch import Batch, Example, make_batches
from searnn.data.task import TaskData
from searnn.data.vocab import Vocab
from searnn.models import ModelConfig, Seq2Seq
from searnn.models.functional import tanh
from searnn.models.transformer import Transformer
from searnn.objectives.mle import MleConfig, MleObjective
from searnn.objectives.searnn import SearnnConfig, SearnnObjective
from searnn.profiling import profiling, region

PLAIN = "SeaRNN full, plain steps"
STATIC = "static: "
"""Name prefix of the runs of the static-shape search engine (``--static-shapes on``)."""
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
    objectives: dict, model: Seq2Seq, batches: list[Batch], warmup: int = 2, patches: dict | None = None,
    profile: bool = False,
):
    """Seconds per batch (objective + backward + SGD step) of every objective, their summed logs and (with
    ``profile``) their summed profile regions (seconds per region path, ``"total"`` = the timed seconds).

    The objectives take turns batch by batch (each on its own copy of the model, passed through
    ``patches[name]`` when given), so that the load of a shared machine drifting during the run weighs on
    all of them alike."""
    patches = patches or {}
    models = {name: patches.get(name, lambda m: m)(copy.deepcopy(model)) for name in objectives}
    opts = {name: torch.optim.SGD(m.parameters(), lr=1e-3) for name, m in models.items()}  # small steps
    seconds = dict.fromkeys(objectives, 0.0)
    logs: dict[str, dict[str, float]] = {name: {} for name in objectives}
    regions: dict[str, dict[str, float]] = {name: {} for name in objectives}
    warm = batches[:warmup]
    for i, batch in enumerate([*warm, *batches]):
        for name, objective in objectives.items():
            times: dict[str, float] = {}
            with profiling(times, cuda=batch.tgt.is_cuda) if profile else _nothing():
                sync(batch)
                start = time.perf_counter()
                with STEP_CONTEXT():
                    out = objective(models[name], batch)
                opts[name].zero_grad(set_to_none=True)
                with region("backward"):
                    out.loss.backward()
                opts[name].step()
                sync(batch)
                elapsed = time.perf_counter() - start
            if i >= len(warm):
                seconds[name] += elapsed
                for k, v in out.logs.items():
                    logs[name][k] = logs[name].get(k, 0.0) + v
                times["total"] = elapsed
                for k, v in times.items():
                    regions[name][k] = regions[name].get(k, 0.0) + v
    return {name: (seconds[name] / len(batches), logs[name], regions[name]) for name in objectives}


class _nothing:  # noqa: N801 - a context manager used like a function
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


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


SECTION9 = dict(
    rollin="reference", rollout="mixed", searnn_loss="kl", kl_scale=200.0, cost="bleu", sample_tokens="topk",
    num_tokens=15, gt_neighbors=5, num_cells=20,
)
"""The SeaRNN settings of RESULTS section 9 (configs/experiments/multi30k_searnn*.yaml)."""

TRANSLATION_MODEL = ModelConfig(
    cell="gru", hidden=128, emb_dim=128, tgt_emb_dim=128, bidirectional=True, attention="additive", dropout=0.3
)
"""The Multi30k model of configs/translation/mle.yaml."""

TRANSFORMER = dict(arch="transformer", heads=4, ffn_dim=256, enc_layers=2, dec_layers=2)
"""The Transformer of configs/experiments/transformer.yaml (``hidden`` per task: OCR 64, translation 128)."""


def transformer_config(cfg: ModelConfig, task_name: str) -> ModelConfig:
    """``cfg`` with the Transformer of configs/experiments/transformer.yaml (``--arch transformer``)."""
    if task_name == "ocr":
        return dataclasses.replace(cfg, hidden=64, aligned_input=True, **TRANSFORMER)
    return dataclasses.replace(cfg, **TRANSFORMER)


def load_translation() -> tuple[TaskData, str]:
    """Multi30k De->En, the first 10,000 training pairs (as section 9)."""
    from searnn.data.registry import load_task
    from searnn.data.translation import TranslationConfig

    return load_task("translation", TranslationConfig(dataset="multi30k", limit_train=10000)), "multi30k"


def load_large(seed: int, vocab_size: int = 30000, pairs: int = 3000) -> tuple[TaskData, str]:
    """Synthetic translation pairs over ``vocab_size`` target (and source) words: Zipf-distributed words,
    sentences of 4-30 tokens, the target a noisy copy of the source (so that a model can learn it)."""
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(vocab_size - 4)]
    vocab = Vocab(words)
    ranks = np.arange(1, len(words) + 1, dtype=np.float64)
    zipf = 1.0 / ranks
    zipf /= zipf.sum()
    examples = []
    for _ in range(pairs):
        n = int(np.clip(rng.normal(13, 5), 4, 30))
        src = rng.choice(len(words), size=n, p=zipf) + 4
        tgt = np.where(rng.random(n) < 0.8, src, rng.choice(len(words), size=n, p=zipf) + 4)
        examples.append(Example([[int(x)] for x in src], [int(x) for x in tgt]))
    task = TaskData(
        name="synthetic-large", train=examples, valid=[], test=[], tgt_vocab=vocab, src_vocabs=[vocab],
        src_feature_dim=None, fixed_length=False, metric="bleu", cost="bleu", lower_is_better=False,
        parse_source=lambda line: [[0]], format_output=lambda ids: "",
    )
    return task, f"synthetic {vocab_size}-word vocabulary"


def pretrain(model: Seq2Seq, objective: MleObjective, batches: list[Batch], steps: int) -> float:
    """Train ``model`` for ``steps`` MLE batches (Adam 1e-3, cycling over ``batches``); returns the last loss."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss = float("nan")
    for i in range(steps):
        out = objective(model, batches[i % len(batches)])
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
        loss = float(out.loss.detach())
    return loss


def runs_for(
    task_name: str, task: TaskData, shortlist: int, horizon: int = 0, static: bool = False, rnn: bool = True
) -> tuple[dict, dict[str, Callable]]:
    """The objectives timed for ``task_name`` and the model patches of some of them. The SeaRNN runs use the
    dynamic search engine (``static_shapes='off'``, also on CUDA); ``static`` adds the same settings with the
    static-shape engine (:mod:`searnn.search.static`), to compare the two engines; ``rnn=False`` (the
    Transformer) leaves out the RNN's plain-steps row."""
    dyn = {"static_shapes": "off"}
    if task_name == "ocr":
        runs: dict = {
            "MLE": MleObjective(MleConfig(), task),
            "SeaRNN full (KL, all tokens)": SearnnObjective(SearnnConfig(**dyn), task),
            "SeaRNN full, PAD/BOS dropped": SearnnObjective(SearnnConfig(special_tokens="drop", **dyn), task),
            "SeaRNN sampled (KL, top-k 5)": SearnnObjective(
                SearnnConfig(sample_tokens="topk", num_tokens=5, **dyn), task
            ),
        }
        if static:
            runs[STATIC + "SeaRNN full (KL, all tokens)"] = SearnnObjective(SearnnConfig(static_shapes="on"), task)
            runs[STATIC + "SeaRNN sampled (KL, top-k 5)"] = SearnnObjective(
                SearnnConfig(sample_tokens="topk", num_tokens=5, static_shapes="on"), task
            )
        if not rnn:
            return runs, {}
        runs[PLAIN] = SearnnObjective(SearnnConfig(**dyn), task)
        return runs, {PLAIN: plain_steps}
    runs = {"MLE": MleObjective(MleConfig(), task)}
    if task_name == "translation":
        runs["SeaRNN s9 full vocabulary"] = SearnnObjective(SearnnConfig(**SECTION9, **dyn), task)
        if static:
            runs[STATIC + "SeaRNN s9 full vocabulary"] = SearnnObjective(
                SearnnConfig(**SECTION9, static_shapes="on"), task
            )
    runs["SeaRNN s9 shortlist"] = SearnnObjective(
        SearnnConfig(**SECTION9, rollout_vocab="shortlist", shortlist_size=shortlist, **dyn), task
    )
    if horizon > 0:
        runs[f"SeaRNN s9 shortlist, horizon {horizon}"] = SearnnObjective(
            SearnnConfig(
                **SECTION9, rollout_vocab="shortlist", shortlist_size=shortlist, rollout_horizon=horizon, **dyn
            ),
            task,
        )
    return runs, {}


PROFILE_ROWS = (
    ("roll-in", ("rollin",)),
    ("choosing cells and tokens", ("explore",)),
    ("roll-outs: recurrent step", ("rollout/learned/decoder.rnn",)),
    ("roll-outs: attention", ("rollout/learned/decoder.attention",)),
    ("roll-outs: self-attention", ("rollout/learned/decoder.self_attention",)),
    ("roll-outs: cross-attention", ("rollout/learned/decoder.cross_attention",)),
    ("roll-outs: feed-forward", ("rollout/learned/decoder.ffn",)),
    ("roll-outs: key/value cache", ("rollout/learned/decoder.cache",)),
    ("roll-outs: output projection", ("rollout/learned/decoder.projection",)),
    ("roll-outs: argmax", ("rollout/learned/decoder.argmax",)),
    ("roll-outs: writing outputs", ("rollout/learned/write",)),
    ("roll-outs: oracle completions", ("rollout/reference",)),
    ("cost (BLEU / Hamming)", ("cost",)),
    ("loss", ("loss",)),
    ("backward", ("backward",)),
)
"""Rows of the profile table: label and the region paths summed (see :mod:`searnn.profiling`); the
recurrent step and attention rows are the RNN's, the self-/cross-attention, feed-forward and cache rows
the Transformer's (each architecture leaves the other's at 0)."""


def print_profile(name: str, regions: dict[str, float], logs: dict[str, float], n: int) -> None:
    """One objective's profile: share of the timed seconds per region; roll-out bookkeeping is the
    roll-outs' time outside the decoder regions listed, "other" the batch's time outside every region."""
    total = regions.get("total", 0.0)
    if total <= 0:
        return
    print(f"\nprofile of {name!r} ({total / n:.3f} s/batch, profiling on)")
    listed = 0.0
    for label, paths in PROFILE_ROWS:
        sec = sum(regions.get(p, 0.0) for p in paths)
        listed += sec
        print(f"  {label:34s} {sec / total:6.1%} {sec / n * 1000:9.1f} ms/batch")
        if label == "roll-outs: oracle completions":
            inner = sum(regions.get(p, 0.0) for lab, ps in PROFILE_ROWS if lab.startswith("roll-outs") for p in ps)
            book = regions.get("rollout", 0.0) - inner
            listed += book
            print(f"  {'roll-outs: other bookkeeping':34s} {book / total:6.1%} {book / n * 1000:9.1f} ms/batch")
    other = total - listed
    print(f"  {'other (optimiser step, glue)':34s} {other / total:6.1%} {other / n * 1000:9.1f} ms/batch")
    steps = logs.get("rollout_steps", 0.0) / n
    decoded = logs.get("rollouts_learned", 0.0) / n
    print(f"  roll-out row-steps per batch: {steps:,.0f} ({decoded:,.0f} roll-outs decoded per batch)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", choices=("ocr", "translation", "large"), default="ocr")
    parser.add_argument("--arch", choices=("rnn", "transformer"), default="rnn", help="the model (see above)")
    parser.add_argument("--batches", type=int, default=30, help="timed batches per objective")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0 = torch default)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pretrain", type=int, default=0, help="MLE batches (Adam 1e-3) before timing")
    parser.add_argument("--shortlist-size", type=int, default=1000, help="K of the shortlisted roll-outs")
    parser.add_argument("--horizon", type=int, default=0, help="also time shortlisted roll-outs with this horizon")
    parser.add_argument("--vocab-size", type=int, default=30000, help="--task large: target vocabulary")
    parser.add_argument("--profile", action="store_true", help="print where each SeaRNN batch goes")
    parser.add_argument("--warmup", type=int, default=2, help="untimed batches before timing")
    parser.add_argument(
        "--model-file", default="", help="load the model's weights from this file if it exists, else save them "
        "there after --pretrain (so that several runs share one pre-trained model)"
    )
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"], help="autocast dtype")
    parser.add_argument(
        "--static-shapes", default="off", choices=["off", "on"],
        help="on: also time the static-shape search engine (the CUDA default) on the same settings",
    )
    args = parser.parse_args()
    global STEP_CONTEXT
    STEP_CONTEXT = functools.partial(precision.autocast, args.precision, torch.device(args.device))
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.task == "ocr":
        task, source = load_ocr(args.seed)
        cfg = ModelConfig()
    elif args.task == "translation":
        task, source = load_translation()
        cfg = TRANSLATION_MODEL
    else:
        task, source = load_large(args.seed, args.vocab_size)
        cfg = TRANSLATION_MODEL
    if args.arch == "transformer":
        cfg = transformer_config(cfg, args.task)
    all_batches = list(make_batches(task.train, args.batch_size, shuffle=True, seed=args.seed))
    batches = [b.to(device) for b in all_batches[: args.batches]]
    per_epoch = len(all_batches)
    torch.manual_seed(args.seed)
    model_cls = Seq2Seq if args.arch == "rnn" else Transformer
    model = model_cls(
        cfg, [len(v) for v in task.src_vocabs], task.src_feature_dim, len(task.tgt_vocab)
    ).to(device)
    model.train()
    cells = sum(int(b.tgt_len.sum()) for b in batches) / max(len(batches), 1)
    print(
        f"data {source}: {len(task.train)} train pairs, {len(task.tgt_vocab)} target ids, {per_epoch} batches "
        f"of {args.batch_size}/epoch (length-bucketed; {cells:.0f} target cells per timed batch); timing "
        f"{args.batches} batches; {args.arch} model of {sum(p.numel() for p in model.parameters()):,} parameters; "
        f"device {device}, threads {torch.get_num_threads()}"
    )
    if args.model_file and Path(args.model_file).exists():
        model.load_state_dict(load_checkpoint(Path(args.model_file), device, what="--model-file")["model"])
        print(f"model weights from {args.model_file}")
    elif args.pretrain:
        rest = [b.to(device) for b in all_batches[args.batches :]] or batches
        loss = pretrain(model, MleObjective(MleConfig(), task), rest, args.pretrain)
        print(f"pre-trained {args.pretrain} MLE batches (last loss {loss:.3f})")
        if args.model_file:
            atomic_save({"model": model.state_dict()}, Path(args.model_file))

    runs, patches = runs_for(
        args.task, task, args.shortlist_size, args.horizon, static=args.static_shapes == "on", rnn=args.arch == "rnn"
    )
    results = time_objectives(runs, model, batches, warmup=args.warmup, patches=patches, profile=args.profile)

    mle_s = results["MLE"][0]
    print(
        f"\n{'objective':32s} {'s/batch':>9s} {'s/epoch':>9s} {'x MLE':>7s} {'roll-outs/batch':>16s} "
        f"{'decoded/batch':>14s} {'row-steps/batch':>16s} {'in roll-outs':>13s} {'agree':>7s}"
    )
    n = len(batches)
    for name, (sec, logs, _) in results.items():
        rollouts, decoded = logs.get("rollouts", 0.0) / n, logs.get("rollouts_learned", 0.0) / n
        steps, share = logs.get("rollout_steps", 0.0) / n, logs.get("rollout_s", 0.0) / n / sec
        agree = f"{logs['shortlist_agree'] / n:7.2%}" if "shortlist_agree" in logs else f"{'':7s}"
        print(
            f"{name:32s} {sec:9.4f} {sec * per_epoch:9.1f} {sec / mle_s:7.2f} {rollouts:16.0f} "
            f"{decoded:14.0f} {steps:16.0f} {share:13.0%} {agree}"
        )
    for name, (_, logs, _) in results.items():
        if "shortlist_size" in logs:
            print(f"{name}: shortlist of {logs['shortlist_size'] / n:,.0f} tokens per batch on average")
    if args.profile:
        for name, (_, logs, regions) in list(results.items())[1:]:
            print_profile(name, regions, logs, n)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"\npeak RSS of the process: {peak:,.0f} MiB")
    if args.task != "ocr" or args.arch != "rnn":
        return

    print(
        f"\n{'roll-out throughput':32s} {'rows/step':>9s} {'steps/s':>12s} {'bare loop':>12s} {'ratio':>7s} "
        f"{'bare table':>12s} {'ratio':>7s}"
    )
    for name, (_, logs, _) in list(results.items())[1:]:
        if "rollout_s" not in logs:  # the static engine does not time its roll-outs (no synchronisation)
            continue
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
        f"\n{STATIC!r}: the static-shape engine (--static-shapes on; every padded row rolled out, no host "
        "synchronisation; its row-steps count the padded work)."
    )


if __name__ == "__main__":
    main()
