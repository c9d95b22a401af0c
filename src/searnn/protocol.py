"""The step protocol: what a model must offer to be trained and decoded by searnn.

Any ``torch.nn.Module`` works with the objectives (:mod:`searnn.api`), the SeaRNN search and the decoders
(:mod:`searnn.decode`) when it has these three methods and one attribute (:class:`StepModel`):

* ``encode(src, src_len) -> enc``: ``src (B, S, K)`` long token streams or ``(B, S, F)`` float features,
  ``src_len (B,)`` long; ``enc`` is any object the model's own ``step`` understands (the encoder output of
  the B examples, never copied per decoder row);
* ``init_state(enc) -> state``: a :class:`State` of B rows, row b on example b (``batch_idx = arange(B)``);
* ``step(enc, state, tokens (N,) long) -> (logits (N, V), new_state)``: one decoder step for the N rows of
  ``state``; row n reads example ``state.batch_idx[n]`` of ``enc``; ``new_state`` has the same rows;
* ``tgt_vocab_size: int``: V, the target vocabulary size (ids ``PAD=0, BOS=1, EOS=2, UNK=3`` first).

A :class:`State` holds N *rows* in any tensors (an RNN's ``h (L, N, H)``, a Transformer's key/value cache
``(L, N, heads, P, d)``); it needs ``batch_idx (N,)`` long, ``len(state) == N``, ``index(rows (M,) long)``
(select rows, repeat a row by repeating its index: roll-outs and beam search branch a state this way) and a
classmethod ``cat(states)`` (concatenate rows).

Optional fast paths, resolved in this module only (``the model's method if it has one, else the generic
fallback built from step``):

* ``teacher_forced(enc, dec_input (B, T)) -> logits (B, T, V)`` (fallback: T calls of ``step``); a model that
  defines it must also define ``forward(src, src_len, dec_input)`` as ``teacher_forced(encode(...), ...)``;
* ``teacher_forced_states(enc, dec_input, detach=True) -> (logits (B, T, V), states)`` with ``T*B`` rows, row
  ``t*B + b`` being the state of example b before consuming ``dec_input[b, t]`` (fallback: the step loop);
* ``advance(enc, state, tokens) -> state`` (fallback: ``step`` without its logits);
* ``step_shared(enc, state, tokens (N,), rows (N,)) -> (logits, state)``: N rows branching from the U rows
  of ``state`` (fallback: ``step(enc, state.index(rows), tokens)``);
* ``step_cached(enc, state, tokens, gates)`` with ``gates = token_gates()``: a step looking a per-token table
  up (no fallback needed: greedy decoding then calls ``step``);
* on states, ``head(k)`` (the first k rows, fallback ``index(arange(k))``) and ``detach()``.

A model without ``forward`` in the teacher-forced sense (any user model) is wrapped by :func:`as_searnn_model`,
which gives it the teacher-forced ``forward`` and every fallback above; searnn's own models
(:class:`searnn.models.Seq2Seq`, :class:`searnn.models.transformer.Transformer`) implement all of them.
:func:`searnn.testing.check_model` checks that a model keeps the protocol's promises.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

import torch
from torch import nn

from searnn.errors import SearnnError

S = TypeVar("S", bound="State")


@runtime_checkable
class State(Protocol):
    """N decoder rows (see the module docstring). ``batch_idx``: ``(N,)`` long, each row's example."""

    batch_idx: torch.Tensor

    def __len__(self) -> int: ...

    def index(self: S, idx: torch.Tensor) -> S:
        """Rows ``idx (M,)`` long (repeats allowed) as a new state of M rows."""
        ...

    @classmethod
    def cat(cls: type[S], states: Sequence[S]) -> S:
        """The rows of ``states`` (all on the same encoded batch), concatenated in order."""
        ...


@runtime_checkable
class StepModel(Protocol):
    """A model that searnn can train and decode (see the module docstring for the shapes)."""

    tgt_vocab_size: int

    def encode(self, src: torch.Tensor, src_len: torch.Tensor) -> Any: ...

    def init_state(self, enc: Any) -> State: ...

    def step(self, enc: Any, state: Any, tokens: torch.Tensor) -> tuple[torch.Tensor, Any]: ...


REQUIRED = ("encode", "init_state", "step")
"""The methods every model must have."""

NATIVE = ("teacher_forced", "teacher_forced_states")
"""Fast paths whose presence means the model's ``forward`` is the teacher-forced pass (no wrapping)."""


def missing_methods(model: object) -> list[str]:
    """The required protocol members ``model`` lacks (empty when it follows the protocol)."""
    missing = [name for name in REQUIRED if not callable(getattr(model, name, None))]
    if not isinstance(getattr(model, "tgt_vocab_size", None), int):
        missing.append("tgt_vocab_size")
    return missing


# ---------------------------------------------------------------------------------------------- state rows


def cat_states(states: Sequence[Any]) -> Any:
    """Concatenate the rows of ``states`` with their class's ``cat``."""
    if not states:
        raise ValueError("cat_states needs at least one state")
    return type(states[0]).cat(states)


def head(state: Any, k: int) -> Any:
    """The first ``k`` rows of ``state``: its ``head`` (views) when it has one, else ``index(arange(k))``."""
    fn = getattr(state, "head", None)
    if fn is not None:
        return fn(k)
    return state.index(torch.arange(k, device=state.batch_idx.device))


def detach(state: Any) -> Any:
    """``state`` cut from the autograd graph when it can be (``detach()``), else ``state`` itself."""
    fn = getattr(state, "detach", None)
    return fn() if fn is not None else state


# ---------------------------------------------------------------------------------------------- model paths


def teacher_forced_loop(
    model: Any, enc: Any, dec_input: torch.Tensor, want_states: bool, detach_states: bool = True
) -> tuple[torch.Tensor, Any]:
    """Teacher forcing by T calls of ``model.step``: logits ``(B, T, V)`` and (``want_states``) the ``T*B``
    states before each step (row ``t*B + b``), else None."""
    state = model.init_state(enc)
    logits: list[torch.Tensor] = []
    before: list[Any] = []
    for t in range(int(dec_input.shape[1])):
        if want_states:
            before.append(detach(state) if detach_states else state)
        step_logits, state = model.step(enc, state, dec_input[:, t])
        logits.append(step_logits)
    if not logits:
        raise ValueError("teacher forcing needs at least one decoder input")
    return torch.stack(logits, dim=1), (cat_states(before) if want_states else None)


def teacher_forced(model: Any, enc: Any, dec_input: torch.Tensor) -> torch.Tensor:
    """Teacher-forced logits ``(B, T, V)``: the model's ``teacher_forced`` or the step loop."""
    fn = getattr(model, "teacher_forced", None)
    if fn is not None:
        return fn(enc, dec_input)
    return teacher_forced_loop(model, enc, dec_input, want_states=False)[0]


def teacher_forced_states(
    model: Any, enc: Any, dec_input: torch.Tensor, detach: bool = True
) -> tuple[torch.Tensor, Any]:
    """Logits ``(B, T, V)`` and the ``T*B`` states before each input: the model's own or the step loop."""
    fn = getattr(model, "teacher_forced_states", None)
    if fn is not None:
        return fn(enc, dec_input, detach=detach)
    return teacher_forced_loop(model, enc, dec_input, want_states=True, detach_states=detach)


def advance(model: Any, enc: Any, state: Any, tokens: torch.Tensor) -> Any:
    """The state after feeding ``tokens (N,)``: the model's ``advance`` or ``step`` without the logits."""
    fn = getattr(model, "advance", None)
    if fn is not None:
        return fn(enc, state, tokens)
    return model.step(enc, state, tokens)[1]


def step_shared(model: Any, enc: Any, state: Any, tokens: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, Any]:
    """N rows branching from shared state rows ``rows (N,)``: the model's ``step_shared`` or
    ``step(enc, state.index(rows), tokens)``."""
    fn = getattr(model, "step_shared", None)
    if fn is not None:
        return fn(enc, state, tokens, rows)
    return model.step(enc, state.index(rows), tokens)


class ProtocolAdapter(nn.Module):
    """A protocol model with the teacher-forced ``forward`` and the fallbacks searnn's code calls.

    ``forward(src, src_len, dec_input (B, T)) -> logits (B, T, V)`` is ``encode`` then :func:`teacher_forced`;
    ``teacher_forced``, ``teacher_forced_states`` and ``advance`` are the model's own or the fallbacks; every
    other attribute (``step_shared``, ``out``, ...) is the wrapped model's, so optional fast paths stay visible.
    The wrapped model is the submodule ``inner`` (same parameters, same train/eval mode).
    """

    def __init__(self, model: nn.Module, tgt_vocab_size: int | None = None):
        super().__init__()
        missing = [name for name in REQUIRED if not callable(getattr(model, name, None))]
        if missing:
            raise SearnnError(f"{type(model).__name__} does not follow the step protocol: no {', '.join(missing)}")
        self.inner = model
        size = getattr(model, "tgt_vocab_size", None) if tgt_vocab_size is None else tgt_vocab_size
        if not isinstance(size, int):
            raise SearnnError(f"{type(model).__name__} has no integer tgt_vocab_size; pass the vocabulary size")
        self.tgt_vocab_size = int(size)
        self.train(model.training)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            inner = self._modules.get("inner")
            if inner is None:
                raise
            return getattr(inner, name)

    def encode(self, src: torch.Tensor, src_len: torch.Tensor) -> Any:
        return self.inner.encode(src, src_len)

    def init_state(self, enc: Any) -> Any:
        return self.inner.init_state(enc)

    def step(self, enc: Any, state: Any, tokens: torch.Tensor) -> tuple[torch.Tensor, Any]:
        return self.inner.step(enc, state, tokens)

    def teacher_forced(self, enc: Any, dec_input: torch.Tensor) -> torch.Tensor:
        return teacher_forced(self.inner, enc, dec_input)

    def teacher_forced_states(self, enc: Any, dec_input: torch.Tensor, detach: bool = True) -> tuple[torch.Tensor, Any]:
        return teacher_forced_states(self.inner, enc, dec_input, detach=detach)

    def advance(self, enc: Any, state: Any, tokens: torch.Tensor) -> Any:
        return advance(self.inner, enc, state, tokens)

    def forward(self, src: torch.Tensor, src_len: torch.Tensor, dec_input: torch.Tensor) -> torch.Tensor:
        return self.teacher_forced(self.encode(src, src_len), dec_input)

    def num_parameters(self, trainable_only: bool = True) -> int:
        """Number of (trainable) scalar parameters of the wrapped model."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)


def as_searnn_model(model: nn.Module, tgt_vocab_size: int | None = None) -> nn.Module:
    """``model`` itself when it implements the teacher-forced paths (:data:`NATIVE`), else a
    :class:`ProtocolAdapter` around it (the one place where fast paths and fallbacks are resolved)."""
    if isinstance(model, ProtocolAdapter):
        return model
    if all(callable(getattr(model, name, None)) for name in NATIVE) and isinstance(
        getattr(model, "tgt_vocab_size", None), int
    ):
        return model
    return ProtocolAdapter(model, tgt_vocab_size)
