"""Evaluation: decode a split with the model and score it with the task's corpus metric."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from searnn import distributed
from searnn.config import TrainConfig
from searnn.data.batch import Example, make_batches
from searnn.data.task import TaskData
from searnn.decoding import decode_batch
from searnn.metrics import METRICS


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    task: TaskData,
    examples: Sequence[Example],
    cfg: TrainConfig,
    device: torch.device,
) -> list[list[int]]:
    """Decode ``examples`` (greedy or beam per ``cfg.beam``); returns target ids per example, in order."""
    was_training = model.training
    model.eval()
    out: list[list[int]] = [[] for _ in examples]
    for batch in make_batches(examples, cfg.eval_batch_size, shuffle=False):
        batch = batch.to(device)
        hyps = decode_batch(
            model,
            batch,
            fixed_length=task.fixed_length,
            beam=cfg.beam,
            max_len=cfg.max_decode_len,
            len_norm=cfg.len_norm,
        )
        for i, hyp in zip(batch.index.tolist(), hyps, strict=True):
            out[i] = list(hyp)
    model.train(was_training)
    return out


def references(examples: Sequence[Example]) -> list[list[list[int]]]:
    """Reference id sequences per example (the target, plus any extra references)."""
    return [[ex.tgt] + list(ex.refs or []) for ex in examples]


def score(task: TaskData, hyps: list[list[int]], examples: Sequence[Example]) -> dict[str, object]:
    """Corpus metric of ``hyps`` against the examples' references: ``{metric: value, 'details', 'signature'}``."""
    result = METRICS[task.metric](hyps, references(examples), task.tgt_vocab, examples)
    return {task.metric: result.value, "details": result.details, "signature": result.signature}


def hyps_text(task: TaskData, hyps: Sequence[Sequence[int]]) -> str:
    """One line per hypothesis, in order, for ``test_hyps.txt`` / ``--save-hyps``: for BLEU the target tokens
    joined by spaces (the text sacreBLEU scored, UNK as ``<unk>``), else the task's output format (as
    ``searnn predict`` prints it)."""
    if task.metric == "bleu":
        from searnn.metrics.bleu import _detok

        return "".join(_detok(list(h), task.tgt_vocab) + "\n" for h in hyps)
    return "".join(task.format_output(list(h)).replace("\n", " ") + "\n" for h in hyps)


def evaluate(
    model: torch.nn.Module,
    task: TaskData,
    split: str,
    cfg: TrainConfig,
    device: torch.device,
    limit: int = 0,
    keep_hyps: bool = False,
) -> dict[str, object]:
    """Decode and score one split (optionally its first ``limit`` examples). ``keep_hyps``: also return the
    decoded id sequences, in order, under ``"hyps"``.

    In a distributed job (:mod:`searnn.distributed`) rank ``r`` of ``W`` decodes examples ``r, r + W, ...``;
    the outputs are gathered in the original order and rank 0 scores them once and broadcasts the scores, so
    the result equals the single-process one exactly for every metric (no per-metric statistics needed)."""
    examples = task.split(split)
    if limit:
        examples = examples[:limit]
    ctx = distributed.current()
    if not ctx.enabled:
        hyps = predict(model, task, examples, cfg, device)
        return _scored(task, hyps, examples, keep_hyps)
    rows = distributed.shard_rows(len(examples), ctx)
    local = predict(model, task, [examples[i] for i in rows], cfg, device) if rows else []
    hyps = distributed.gather_in_order(rows, local, len(examples))
    return distributed.broadcast_object(_scored(task, hyps, examples, keep_hyps) if ctx.is_main else None)


def _scored(task: TaskData, hyps: list[list[int]], examples: Sequence[Example], keep_hyps: bool) -> dict[str, object]:
    out = score(task, hyps, examples)
    if keep_hyps:
        out["hyps"] = hyps
    return out
