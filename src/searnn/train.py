"""The training loop: one objective-agnostic loop with validation, model selection and resumption.

``run(cfg)`` trains ``cfg.train.epochs`` epochs of ``cfg.train.objective`` on ``cfg.train.task``,
validates after every epoch (and decays the learning rate on plateaus), keeps the best-on-validation
checkpoint, evaluates it once on the test split and writes ``results.json``. The run directory holds
``config.yaml`` (resolved config), ``metrics.jsonl`` (one JSON record per epoch), ``last.pt`` (everything
needed to resume, also written mid-epoch every ``checkpoint_minutes``) and ``best.pt``. Running the same
command again resumes from ``last.pt``; a finished run is not retrained. Under ``torchrun`` (or ``--nproc N``)
the same loop trains data-parallel: see :mod:`searnn.distributed` (sharding, gradient all-reduce, rank 0 writes).
Set-up helpers live in :mod:`searnn.run_setup`, the optimiser and plateau decay in :mod:`searnn.optim`, the
checkpoint half of the trainer in :mod:`searnn.resume`.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import torch

import searnn
from searnn import checkpoint as ckpt
from searnn import distributed, precision
from searnn.beam_test import beam_test
from searnn.config import RunConfig, early_stop_due
from searnn.data.batch import Batch, make_batches
from searnn.data.registry import load_task
from searnn.divergence import DivergenceGuard
from searnn.divergence import TrainingError as TrainingError  # re-exported (it used to live here)
from searnn.errors import SearnnError
from searnn.evaluate import evaluate, hyps_text
from searnn.objectives import OBJECTIVES
from searnn.optim import Plateau as Plateau
from searnn.optim import is_better as is_better
from searnn.optim import make_optimizer as make_optimizer
from searnn.paired import HYPS_FILES
from searnn.provenance import code_version, short_version
from searnn.resume import Checkpointing
from searnn.resume import LoopState as LoopState
from searnn.run_setup import build_model as build_model  # the set-up helpers are re-exported from here
from searnn.run_setup import check_vocabs as check_vocabs
from searnn.run_setup import check_warm_start as check_warm_start
from searnn.run_setup import log as log
from searnn.run_setup import resolve_device as resolve_device
from searnn.run_setup import save_vocabs as save_vocabs
from searnn.run_setup import seed_everything as seed_everything


class Trainer(Checkpointing):
    """Holds the pieces of one run; :meth:`fit` is the loop (checkpoints and resumption: :class:`Checkpointing`)."""

    def __init__(self, cfg: RunConfig):
        self.cfg = cfg
        t = cfg.train
        torch.set_num_threads(t.threads)
        self.dist = distributed.current()
        self.device = resolve_device(distributed.device_for(t.device, self.dist))
        precision.check_precision(t.precision, self.device)
        self.scaler = precision.grad_scaler(t.precision, self.device)
        if not t.run_dir:
            raise SearnnError("--run-dir is required")
        # Everything that can fail on bad input (task data, objective options, warm-start path) is checked
        # before the run directory is written to, so a failed command leaves no config.yaml behind.
        seed_everything(t.seed)
        self.task = load_task(t.task, cfg.task)
        if not self.task.train:
            raise SearnnError(f"task {t.task}: the training split is empty")
        records_only = ckpt.records_only(Path(t.run_dir))  # e.g. copied back from `searnn experiment --archive`
        if not (Path(t.run_dir) / ckpt.LAST).exists() and not records_only:  # a resumed run no longer needs it
            check_warm_start(t.warm_start)
        self.model = build_model(cfg, self.task).to(self.device)
        distributed.broadcast_parameters(self.model)
        self.objective = OBJECTIVES[t.objective](cfg.objective, self.task)
        if records_only and ckpt.finished_results(cfg, log) is None:
            raise SearnnError(f"{t.run_dir} holds a run's results but no checkpoint ({ckpt.LAST}) to go on from, "
                              "and those results do not cover this request (more epochs, another beam test); "
                              "delete that directory to train again from scratch, or use another --run-dir")
        if self.dist.is_main:  # rank 0 alone writes the run dir; the others read it once it is ready
            self.run_dir, self.resuming = ckpt.prepare_run_dir(cfg)
        distributed.barrier("the run directory set-up")
        if not self.dist.is_main:
            self.run_dir, self.resuming = Path(t.run_dir), ckpt.has_checkpoint(Path(t.run_dir))
        if self.resuming:
            check_vocabs(self.run_dir, self.task)
        if self.dist.is_main and not records_only:
            save_vocabs(self.run_dir, self.task)
        self.optimizer = make_optimizer(cfg, self.model)
        self.plateau = Plateau(self.optimizer, t.lr_decay, t.lr_patience, t.min_lr)
        self.state = LoopState()
        self.guard = DivergenceGuard()
        self.finished: dict[str, Any] | None = (
            ckpt.finished_results(cfg, log) if self.resuming or records_only else None)
        if self.resuming and self.finished is None:
            self.load_last()
        elif t.warm_start and self.finished is None:
            self.warm_start(Path(t.warm_start))

    # -- the loop ----------------------------------------------------------------------------------
    def train_epoch(self, epoch: int) -> bool:
        """Train one epoch (from ``state.batch``). Returns False when the time budget ran out."""
        t, st = self.cfg.train, self.state
        self.model.train()
        self.objective.start_epoch(epoch, t.epochs)
        batches = list(make_batches(self.task.train, t.batch_size, shuffle=True, seed=t.seed * 100003 + epoch))
        bar = self.progress_bar(len(batches), epoch, initial=st.batch)
        last_ckpt = time.monotonic()
        for i in range(st.batch, len(batches)):
            start = time.perf_counter()
            if self.dist.enabled:  # each rank its own stream, from (seed, epoch, batch, rank)
                distributed.seed_batch(t.seed, epoch, i, self.dist)
            # The states this batch starts from, saved instead of the current ones if it is interrupted. An
            # objective's state_dict holds counters and references to tensors it replaces, never mutates.
            self.batch_rng = ckpt.capture_rng()
            self.batch_objective = getattr(self.objective, "state_dict", dict)()
            where = f"epoch {epoch + 1}, batch {i + 1}"
            hint = f"objective {t.objective}, lr {self.optimizer.param_groups[0]['lr']:g}"
            loss, examples, cells, logs = self.train_step(batches[i], where, hint)
            elapsed = time.perf_counter() - start
            st.epoch_seconds += elapsed
            st.train_seconds += elapsed
            st.batch = i + 1
            self.accumulate(loss, examples, cells, logs)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{st.sums['loss'] / st.sums['n_batches']:.4f}",
                                ex_s=f"{st.sums['examples'] / max(st.epoch_seconds, 1e-9):.0f}")
            if t.checkpoint_minutes and time.monotonic() - last_ckpt > 60 * t.checkpoint_minutes:
                self.save_last()
                last_ckpt = time.monotonic()
            if t.time_budget and self.budget_seconds(st.train_seconds) >= t.time_budget:
                if bar is not None:
                    bar.close()
                return False
        if bar is not None:
            bar.close()
        return True

    def train_step(self, batch: Batch, where: str, hint: str) -> tuple[float, int, int, dict[str, float]]:
        """One optimiser step on a global batch; returns (loss, examples, cells, logs) of the global batch.

        Single process: the objective's loss is backpropagated as is. Distributed (see
        :mod:`searnn.distributed`): this rank trains its shard, whose ``LossOutput`` has ``loss = S_r / d_r``
        and ``denom = d_r``; it backpropagates the unnormalised ``S_r = loss * d_r``, then one all-reduce sums
        the gradients and ``(S_r, d_r, rows, cells)`` over the ranks, and the summed gradients are divided by
        ``D = sum_r d_r``: the single-process gradient of ``sum_r S_r / D`` for every normalisation
        (cell-per-seq: ``d_r`` = sequences, cell-global: active cells, batch: rows). ``logs`` are rank 0's
        shard's.

        A process whose shard is empty (a last batch smaller than the number of processes) runs the objective
        on a stand-in row with weight 0, so that every process calls the objective on every batch (its
        schedules and counters stay in step) and contributes nothing."""
        t = self.cfg.train
        local = distributed.shard_batch(batch, self.dist) if self.dist.enabled else batch
        weight = 1.0
        if local is None:
            local, weight = distributed.shard_batch(batch, distributed.Context(0, self.dist.world)), 0.0
        assert local is not None
        local = local.to(self.device)
        with precision.autocast(t.precision, self.device):
            out = self.objective(self.model, local)
        if not self.dist.enabled:
            loss_value, examples, cells = float(out.loss.item()), local.size, int(local.tgt_mask.sum())
            self.guard.check_loss(loss_value, where, hint)  # see searnn.divergence
        self.optimizer.zero_grad(set_to_none=True)
        loss = out.loss * (out.denom * weight) if self.dist.enabled else out.loss
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
        if self.dist.enabled:
            mine = [weight * float(out.loss.item()) * out.denom, weight * out.denom, weight * local.size,
                    weight * float(local.tgt_mask.sum()), self.state.train_seconds]
            total, denom, n_rows, n_cells, seconds = distributed.all_reduce_gradients(self.model.parameters(), mine)
            self.shared_seconds = seconds / self.dist.world  # mean training time before this step
            distributed.scale_gradients(self.model.parameters(), 1.0 / max(denom, 1e-30))
            loss_value, examples, cells = total / max(denom, 1e-30), int(n_rows), int(n_cells)
            self.guard.check_loss(loss_value, where, hint)  # the global batch's loss: the same on every rank
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if t.clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.clip_norm)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.guard.check_parameters(self.model.named_parameters(), where, hint)
        return loss_value, examples, cells, out.logs

    def budget_seconds(self, own: float) -> float:
        """The training time that ``--time-budget`` is compared with: this process's own, or in a distributed
        job the processes' mean before the last step (the same on every process, so all stop together)."""
        return getattr(self, "shared_seconds", own) if self.dist.enabled else own

    def accumulate(self, loss: float, examples: int, cells: int, logs: dict[str, float]) -> None:
        sums = self.state.sums
        for key, value in {"loss": loss, "n_batches": 1, "examples": examples, "cells": cells}.items():
            sums[key] = sums.get(key, 0.0) + value
        for key, value in logs.items():
            sums["log:" + key] = sums.get("log:" + key, 0.0) + float(value)

    def progress_bar(self, total: int, epoch: int, initial: int) -> Any:
        if not self.cfg.train.progress or not self.dist.is_main:
            return None
        from tqdm import tqdm

        return tqdm(total=total, initial=initial, desc=f"epoch {epoch + 1}/{self.cfg.train.epochs}",
                    leave=False, dynamic_ncols=True, disable=None)

    def end_epoch(self, epoch: int) -> dict[str, Any]:
        """Validate, update the schedule and best checkpoint, log the epoch. Returns its record."""
        t, st, task = self.cfg.train, self.state, self.task
        valid = evaluate(self.model, task, "valid", t, self.device, limit=t.limit_valid)
        value = float(valid[task.metric])  # type: ignore[arg-type]
        improved = is_better(value, st.best, task.lower_is_better)
        if improved:
            st.best, st.best_epoch = value, epoch + 1
        if improved and self.dist.is_main:
            ckpt.atomic_save({"model": self.model.state_dict(), "epoch": epoch + 1, "valid": value},
                             self.run_dir / ckpt.BEST)
        if t.lr_schedule == "plateau":
            self.plateau.step(improved)
        sums, n = st.sums, max(st.sums.get("n_batches", 1.0), 1.0)
        record = {
            "epoch": epoch + 1,
            "train_loss": sums.get("loss", 0.0) / n,
            f"valid_{task.metric}": value,
            "best_valid": st.best,
            "lr": self.optimizer.param_groups[0]["lr"],
            "epoch_seconds": st.epoch_seconds,
            "train_seconds": st.train_seconds,
            "examples_per_second": sums.get("examples", 0.0) / max(st.epoch_seconds, 1e-9),
            "batches": int(sums.get("n_batches", 0)),
            "code": code_version(self.device),
        }
        record.update({k[4:]: v / n for k, v in sums.items() if k.startswith("log:")})
        if self.dist.is_main:
            ckpt.append_jsonl(self.run_dir / ckpt.METRICS_LOG, record)
        log(f"epoch {epoch + 1}/{t.epochs}  loss {record['train_loss']:.4f}  valid {task.metric} {value:.3f}"
            f"  best {st.best:.3f} (epoch {st.best_epoch})  {st.epoch_seconds:.1f}s"
            f"  lr {record['lr']:.2g}")
        return record

    def fit(self) -> dict[str, Any]:
        t, st = self.cfg.train, self.state
        if self.finished is not None:
            log(already_finished(self.run_dir, self.finished))
            return self.finished
        log(f"task {t.task} ({len(self.task.train)} train / {len(self.task.valid)} valid / "
            f"{len(self.task.test)} test), objective {t.objective}, {self.model.num_parameters():,} "
            f"parameters, device {self.device}")
        while st.epoch < t.epochs and not st.stopped:
            try:
                finished = self.train_epoch(st.epoch)
            except KeyboardInterrupt:
                # Ctrl-C / SIGTERM between or inside batches: keep every completed batch. The optimizer step
                # and the loop position are updated together after each batch, so last.pt is consistent.
                with distributed.sigterm_ignored():  # torchrun repeats its SIGTERM: let the save finish
                    self.save_last(rng=self.batch_rng_state(),
                                   objective=getattr(self, "batch_objective", None))
                log(f"interrupted at epoch {st.epoch + 1}, batch {st.batch}: saved {self.run_dir / ckpt.LAST}")
                raise
            except distributed.DistributedError as e:
                # another rank died: no optimizer step was taken on the failed batch, so last.pt is consistent
                with distributed.sigterm_ignored():
                    self.save_last(rng=self.batch_rng_state(),
                                   objective=getattr(self, "batch_objective", None))
                raise distributed.DistributedError(f"{e}; saved {self.run_dir / ckpt.LAST} at epoch "
                                                   f"{st.epoch + 1}, batch {st.batch}: run the same command "
                                                   "again to resume") from None
            self.end_epoch(st.epoch)
            st.epoch, st.batch, st.sums, st.epoch_seconds = st.epoch + 1, 0, {}, 0.0
            if not finished:
                st.stopped = f"time budget of {t.time_budget:g}s reached"
            elif early_stop_due(st.epoch, st.best_epoch, t.early_stop):
                st.stopped = f"no validation gain for {t.early_stop} epochs"
            self.save_last()
            if st.stopped:
                log(f"stopping: {st.stopped}")
        return self.finish()

    def finish(self) -> dict[str, Any]:
        """Load the best checkpoint, evaluate it on validation and (once) on test, write results.json."""
        t, task = self.cfg.train, self.task
        distributed.barrier("the final evaluation")  # best.pt is written by rank 0
        best = ckpt.load_checkpoint(self.run_dir / ckpt.BEST, self.device, what="results")
        self.model.load_state_dict(best["model"])
        valid = evaluate(self.model, task, "valid", t, self.device)
        test = evaluate(self.model, task, "test", t, self.device, keep_hyps=True)
        beam = beam_test(self.model, task, t, self.device, evaluate=evaluate) if t.test_beam else None
        history = ckpt.read_jsonl(self.run_dir / ckpt.METRICS_LOG)
        epoch_secs = [r["epoch_seconds"] for r in history]
        results = {
            "task": t.task,
            "objective": t.objective,
            "metric": task.metric,
            "lower_is_better": task.lower_is_better,
            "valid": {task.metric: valid[task.metric]},
            "test": {task.metric: test[task.metric]},
            "test_details": test["details"],
            "signature": test["signature"],
            "best_epoch": best["epoch"],
            "epochs": len(history),
            "stopped": self.state.stopped,
            "train_examples": len(task.train),
            "seconds_per_epoch": sum(epoch_secs) / max(len(epoch_secs), 1),
            "train_seconds": self.state.train_seconds,
            "seed": t.seed,
            "decoding": "greedy" if t.beam == 1 else f"beam {t.beam}, len_norm {t.len_norm}",
            "device": str(self.device),
            "parameters": self.model.num_parameters(),
            "searnn_version": searnn.__version__,
            "torch_version": torch.__version__,
            "code": code_version(self.device),
            "trained_with": list(dict.fromkeys(short_version(r["code"]) for r in history
                                               if isinstance(r.get("code"), dict))),
            "config": self.cfg.to_dict(),
        }
        if beam is not None:
            results["test_beam"] = {k: v for k, v in beam.items() if k != "hyps"}
        if self.dist.enabled:
            results["world_size"] = self.dist.world
        if self.dist.is_main:  # the decodings first: a results.json always comes with its hypotheses
            ckpt.atomic_write_text(hyps_text(task, test["hyps"]), self.run_dir / HYPS_FILES["test"])  # type: ignore[arg-type]
            if beam is not None:
                ckpt.atomic_write_text(hyps_text(task, beam["hyps"]), self.run_dir / HYPS_FILES["test_beam"])
            ckpt.atomic_write_text(json.dumps(results, indent=2, default=_json_default),
                                   self.run_dir / ckpt.RESULTS)
        log(f"best epoch {best['epoch']}: valid {task.metric} {valid[task.metric]:.3f}, "
            f"test {task.metric} {test[task.metric]:.3f}   [{test['signature']}]")
        if beam is not None:
            log(f"beam {t.test_beam}, len_norm {beam['len_norm']:g} (best on valid of "
                f"{', '.join(f'{c}: {v:.3f}' for c, v in beam['valid_by_len_norm'].items())}): "
                f"test {task.metric} {beam['test'][task.metric]:.3f}")
        return results


def _json_default(obj: Any) -> Any:
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)


def already_finished(run_dir: Path, results: dict[str, Any]) -> str:
    """The one line printed when a finished run is run again."""
    return f"{run_dir}: already finished ({results.get('epochs')} epochs); results in {run_dir / ckpt.RESULTS}"


def run(cfg: RunConfig) -> dict[str, Any]:
    """Train (or resume) the run described by ``cfg``; returns the results dict. The run directory is locked
    for the duration (:func:`searnn.checkpoint.acquire_lock`). A finished run loads nothing but its
    ``config.yaml`` and ``results.json``.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) the process joins the group first (:mod:`searnn.distributed`);
    rank 0 holds the lock."""
    if not cfg.train.run_dir:
        raise SearnnError("--run-dir is required")
    ctx = distributed.env_context()
    if ctx.enabled:
        distributed.setup(resolve_device(distributed.device_for(cfg.train.device, ctx)))
    ended_normally = False
    try:
        lock = ckpt.acquire_lock(Path(cfg.train.run_dir)) if ctx.is_main else None
        try:
            distributed.barrier("the run directory lock")
            finished = ckpt.finished_results(cfg, log)
            if finished is not None:
                log(already_finished(Path(cfg.train.run_dir), finished))
                ended_normally = True
                return finished
            results = Trainer(cfg).fit()
            ended_normally = True
            return results
        finally:
            if lock is not None:
                ckpt.release_lock(lock)
    finally:
        if ctx.enabled:
            distributed.teardown(synchronise=ended_normally)
