"""Roll-out throughput of SeaRNN with the Transformer, against a bare incremental decoding loop.

On the same batches of a task (``--task ocr``: batch 32 of the shipped OCR words, every token of every cell
rolled out, the paper's OCR setting; ``--task translation``: Multi30k, top-15 tokens per cell, 20 cells), with
a small Transformer (``--hidden 128 --heads 4 --ffn-dim 256``, ``--layers`` for both sides), it runs:

* the SeaRNN search (learned roll-in, learned roll-outs): the engine's learned roll-outs, which share each
  cell's cached state in the first step (``Transformer.step_shared``), read the encoder keys / values computed
  once per batch through the grouped row layout, and drop finished rows;
* a bare incremental decoding loop over the same candidates (those a decoder continues), in chunks of the same
  size sorted by budget: ``state.index(rows)`` (every candidate's cache copied), then ``model.step`` + argmax
  up to the chunk's largest budget, no row dropped and nothing reused from the roll-in (what a straightforward
  implementation of the roll-outs does).

It prints decoder row-steps per second for both (the engine counts only the row-steps it needed) and roll-outs
per second. Usage: ``python benchmarks/bench_transformer.py [--task ocr|translation] [--batches 5]
[--threads 1]``. Timings on a shared machine drift: compare the two rows of one run.
"""

from __future__ import annotations

import argparse
import time

import torch

from searnn.costs import make_cost
from searnn.data.batch import make_batches
from searnn.data.registry import load_task, task_config_class
from searnn.data.vocab import EOS_ID
from searnn.models import ModelConfig
from searnn.models.transformer import Transformer
from searnn.search.engine import SearchOptions, output_cap, search


def bare_loop(model: Transformer, rollin, rows: torch.Tensor, tokens: torch.Tensor, steps: int) -> int:
    """Greedy steps from roll-in state rows ``rows (N,)`` feeding ``tokens (N,)`` first; returns row-steps run."""
    assert rollin.states is not None
    state = rollin.states.index(rows)
    inp = tokens
    for _ in range(steps):
        logits, state = model.step(rollin.enc, state, inp)
        inp = logits.argmax(-1)
    return int(rows.numel()) * steps


def main() -> None:
    parser = argparse.ArgumentParser(description="Transformer roll-out throughput vs a bare decoding loop")
    parser.add_argument("--task", default="ocr", choices=["ocr", "translation"])
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--ffn-dim", type=int, default=256)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg_cls = task_config_class(args.task)
    task = load_task(args.task, cfg_cls(limit_train=args.batch_size * args.batches))
    cfg = ModelConfig(arch="transformer", hidden=args.hidden, heads=args.heads, ffn_dim=args.ffn_dim,
                      enc_layers=args.layers, dec_layers=args.layers, aligned_input=task.fixed_length)
    model = Transformer(cfg, [len(v) for v in task.src_vocabs], task.src_feature_dim, len(task.tgt_vocab)).eval()
    cost = make_cost(task.cost, task.tgt_vocab)
    if args.task == "ocr":
        opts = SearchOptions(rollin="learned", rollout="learned", sample_tokens="all")
    else:
        opts = SearchOptions(rollin="learned", rollout="learned", sample_tokens="topk", num_tokens=15, num_cells=20)
    engine_s = bare_s = 0.0
    engine_steps = bare_steps = rollouts = 0
    for batch in list(make_batches(task.train, args.batch_size))[: args.batches]:
        with torch.no_grad():
            res = search(model, batch, cost, task.fixed_length, opts)
            engine_s += res.stats["rollout_s"]
            engine_steps += int(res.stats["rollout_steps"])
            rollouts += int(res.stats["rollouts_learned"])
            cand = res.candidates
            cap_n = output_cap(batch.tgt_len - 1, task.fixed_length, opts.max_len_ratio, opts.max_len_extra)[cand.b]
            grows = (cand.a != EOS_ID) & (cand.t + 1 < cap_n)  # the candidates a decoder continues
            rows = (cand.t * batch.size + cand.b)[grows]
            first, budget = cand.a[grows], (cap_n - cand.t - 1)[grows]
            order = torch.argsort(budget, descending=True)
            rows, first, budget = rows[order], first[order], budget[order]
            start = time.perf_counter()
            done = 0
            for lo in range(0, int(rows.numel()), opts.rollout_batch_size):
                sl = slice(lo, lo + opts.rollout_batch_size)
                done += bare_loop(model, res.rollin, rows[sl], first[sl], int(budget[sl].max()))
            bare_s += time.perf_counter() - start
            bare_steps += done
    print(f"task {args.task}, {args.batches} batches of {args.batch_size}, transformer d={args.hidden} "
          f"heads={args.heads} ffn={args.ffn_dim} layers={args.layers}, {args.threads} thread(s)")
    print(f"engine roll-outs: {engine_steps / max(engine_s, 1e-9):,.0f} row-steps/s, "
          f"{rollouts / max(engine_s, 1e-9):,.0f} learned roll-outs/s ({engine_s:.2f} s)")
    print(f"bare loop:        {bare_steps / max(bare_s, 1e-9):,.0f} row-steps/s ({bare_s:.2f} s for "
          f"{bare_steps:,} row-steps)")
    print(f"engine time / bare-loop time for the same roll-outs: {engine_s / max(bare_s, 1e-9):.2f} "
          "(the engine also stops rows at EOS and copies the roll-in's own continuations)")


if __name__ == "__main__":
    main()
