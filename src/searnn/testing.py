"""Conformance check of the step protocol (:mod:`searnn.protocol`), for any model.

``searnn.testing.check_model(model)`` runs in a test of your own model and raises ``AssertionError`` naming the
first broken promise. It checks, in eval mode and without gradient, on a small random batch:

1. the protocol's members exist and ``step``'s logits have ``tgt_vocab_size`` columns;
2. step-by-step decoding equals teacher forcing (the model's ``teacher_forced`` / ``forward`` when it has them,
   and ``teacher_forced_states``: stepping row ``t*B + b`` with input ``t`` of example b gives its logits);
3. ``index`` / ``cat`` round-trip: a permuted state, split in two and concatenated back in the original order,
   steps to the same logits as the original (and ``head(k)``, if defined, equals ``index(arange(k))``);
4. a roll-out from a branched state (``index`` with repeated rows, then a forced token, then greedy) equals a
   fresh decode of the same prefix and token from ``init_state``; with ``step_shared``, its first step equals
   ``step`` on the indexed state.

Host synchronisations: ``searnn.testing.SyncGuard`` (from :mod:`searnn.syncguard`) records, on a CPU, the
operations that would make a CUDA device wait for the host (``with SyncGuard() as guard: ...``, then
``guard.events``); ``mark_host`` marks a tensor that lives on the host on a GPU run.

The batch: ``src``/``src_len`` when given, else 3 sources of lengths 5, 3, 4 (float features of size
``model.src_feature_dim`` when the model has that attribute, else one token stream of ids 4..7).
"""

from __future__ import annotations

from typing import Any

import torch

from searnn import protocol
from searnn.data.vocab import BOS_ID
from searnn.syncguard import SyncEvent, SyncGuard, mark_host

__all__ = ["CHECKS", "SyncEvent", "SyncGuard", "check_model", "default_batch", "mark_host"]

CHECKS = ("protocol", "teacher-forcing", "index-cat", "rollout")


def _close(a: torch.Tensor, b: torch.Tensor, atol: float, what: str) -> None:
    if a.shape != b.shape:
        raise AssertionError(f"{what}: shapes differ, {tuple(a.shape)} vs {tuple(b.shape)}")
    diff = float((a.float() - b.float()).abs().max()) if a.numel() else 0.0
    if not diff <= atol:
        raise AssertionError(f"{what}: max difference {diff:.3g} > {atol:g}")


def default_batch(model: Any, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """3 random sources of lengths 5, 3, 4 on the model's device (see the module docstring)."""
    gen = torch.Generator().manual_seed(seed)
    src_len = torch.tensor([5, 3, 4])
    feat = getattr(model, "src_feature_dim", None)
    if isinstance(feat, int) and feat > 0:
        src = torch.rand(3, 5, feat, generator=gen)
    else:
        src = torch.randint(4, 8, (3, 5, 1), generator=gen)
    return src, src_len


def check_model(
    model: torch.nn.Module, src: torch.Tensor | None = None, src_len: torch.Tensor | None = None,
    steps: int = 5, atol: float = 1e-4, seed: int = 0,
) -> list[str]:
    """Run the conformance checks (module docstring) on ``model``; returns the names of the checks passed.
    ``steps``: decoder inputs of the teacher-forced comparison; ``atol``: tolerance on logits."""
    missing = protocol.missing_methods(model)
    if missing:
        raise AssertionError(f"{type(model).__name__} does not follow the step protocol: no {', '.join(missing)}")
    if src is None or src_len is None:
        src, src_len = default_batch(model, seed)
    param = next(iter(model.parameters()), None)
    if param is not None:
        src, src_len = src.to(param.device), src_len.to(param.device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return _run(model, src, src_len, steps, atol, seed)
    finally:
        model.train(was_training)


def _run(model: Any, src: torch.Tensor, src_len: torch.Tensor, steps: int, atol: float, seed: int) -> list[str]:
    v = int(model.tgt_vocab_size)
    enc = model.encode(src, src_len)
    state0 = model.init_state(enc)
    b = int(src.shape[0])
    device = src.device
    if len(state0) != b:
        raise AssertionError(f"init_state has {len(state0)} rows for {b} examples")
    if not torch.equal(state0.batch_idx.cpu(), torch.arange(b)):
        raise AssertionError("init_state's batch_idx is not arange(B)")
    gen = torch.Generator().manual_seed(seed + 1)
    dec = torch.randint(4, v, (b, steps), generator=gen).to(device)
    dec[:, 0] = BOS_ID

    # 2. step-by-step == teacher forcing
    looped, _ = protocol.teacher_forced_loop(model, enc, dec, want_states=False)
    if looped.shape != (b, steps, v):
        raise AssertionError(f"step's logits must be (N, tgt_vocab_size={v}); got {tuple(looped.shape[::2])}")
    done = ["protocol"]
    if callable(getattr(model, "teacher_forced", None)):
        _close(model.teacher_forced(enc, dec), looped, atol, "teacher_forced vs step-by-step")
        if callable(getattr(model, "forward", None)) and callable(getattr(model, "teacher_forced_states", None)):
            _close(model(src, src_len, dec), looped, atol, "forward vs step-by-step")
    logits, states = protocol.teacher_forced_states(model, enc, dec)
    _close(logits, looped, atol, "teacher_forced_states logits vs step-by-step")
    if len(states) != steps * b:
        raise AssertionError(f"teacher_forced_states must return T*B = {steps * b} rows, got {len(states)}")
    again, _ = model.step(enc, states, dec.t().reshape(-1))
    _close(again.view(steps, b, v).transpose(0, 1), looped, atol, "step from teacher_forced_states rows")
    done.append("teacher-forcing")

    # 3. index / cat round-trip
    state = state0
    for t in range(2):
        _, state = model.step(enc, state, dec[:, t])
    tokens = dec[:, 2]
    ref, _ = model.step(enc, state, tokens)
    perm = torch.randperm(b, generator=gen).to(device)
    shuffled = state.index(perm)
    inverse = torch.argsort(perm)
    parts = [shuffled.index(inverse[:1]), shuffled.index(inverse[1:])]
    joined = protocol.cat_states(parts)
    if len(joined) != b or not torch.equal(joined.batch_idx, state.batch_idx):
        raise AssertionError("index / cat did not give back the rows and batch_idx")
    out, _ = model.step(enc, joined, tokens)
    _close(out, ref, atol, "step after index / cat round-trip")
    if callable(getattr(state, "head", None)):
        k = max(b - 1, 1)
        h_out, _ = model.step(enc, state.head(k), tokens[:k])
        i_out, _ = model.step(enc, state.index(torch.arange(k, device=device)), tokens[:k])
        _close(h_out, i_out, atol, "head(k) vs index(arange(k))")
    done.append("index-cat")

    # 4. roll-out from a branched state == fresh decode
    rows = torch.arange(b, device=device).repeat_interleave(2)  # two candidates per example
    forced = torch.randint(4, v, (2 * b,), generator=gen).to(device)
    branched = state.index(rows)
    shared = getattr(model, "step_shared", None)
    first, s_branch = model.step(enc, branched, forced)
    if shared is not None:
        first_shared, _ = shared(enc, state, forced, rows)
        _close(first_shared, first, atol, "step_shared vs step on the indexed state")
    fresh_state = model.init_state(enc).index(rows)
    for t in range(2):
        _, fresh_state = model.step(enc, fresh_state, dec[rows, t])
    fresh, f_state = model.step(enc, fresh_state, forced)
    _close(first, fresh, atol, "roll-out's first step vs a fresh decode")
    a_tok, b_tok = first.argmax(-1), fresh.argmax(-1)
    for t in range(3):
        if not torch.equal(a_tok, b_tok):
            raise AssertionError(f"roll-out greedy tokens differ from a fresh decode at step {t}")
        la, s_branch = model.step(enc, s_branch, a_tok)
        lb, f_state = model.step(enc, f_state, b_tok)
        _close(la, lb, atol, f"roll-out step {t + 1} vs a fresh decode")
        a_tok, b_tok = la.argmax(-1), lb.argmax(-1)
    done.append("rollout")
    return done
