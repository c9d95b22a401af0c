"""The Python API: searnn's objectives as loss objects for any model that follows :mod:`searnn.protocol`.

::

    loss_fn = searnn.SearnnLoss(vocab=V, cost="edit", rollin="learned", rollout="mixed")
    out = loss_fn(model, src, src_len, tgt, tgt_len)   # LossOutput(loss, denom, logs)
    out.loss.backward()

``src (B, S, K)`` long token streams or ``(B, S, F)`` float features, ``src_len (B,)``; ``tgt (B, T)`` long target
ids **without** EOS (PAD after ``tgt_len (B,)`` tokens; the loss appends EOS). Tensors may be on any device:
they are moved to the model's. Each loss class takes every option of its objective's config class as a keyword
with the same default (``SearnnLoss.options()`` lists them); an unknown keyword is a :class:`ConfigError`
naming the valid ones. Besides them: ``vocab`` (a :class:`Vocab` or the vocabulary size V; default the model's
``tgt_vocab_size``), ``fixed_length`` (one output per source position, e.g. OCR), ``train_targets`` (the
training targets, lists of ids, for the options that read the training set: ``similarity='train'``, the
sequence-smoothing reference pools, ``rollout_vocab='shortlist'``).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from searnn.data.batch import Batch, Example
from searnn.data.task import TaskData
from searnn.data.vocab import EOS_ID, PAD_ID, SPECIALS, Vocab
from searnn.errors import ConfigError
from searnn.objectives import OBJECTIVES, LossOutput, Objective
from searnn.protocol import as_searnn_model
from searnn.ranges import check_value
from searnn.syncguard import mark_host

TASK_KEYWORDS = ("vocab", "fixed_length", "train_targets")
"""Keywords of every loss class that describe the task rather than the objective."""


def placeholder_vocab(size: int) -> Vocab:
    """A :class:`Vocab` of ``size`` ids (the 4 specials, then tokens named ``t4``, ``t5``, ...)."""
    if size <= len(SPECIALS):
        raise ConfigError(f"vocab must have more than {len(SPECIALS)} ids (PAD, BOS, EOS, UNK), got {size}")
    return Vocab(f"t{i}" for i in range(len(SPECIALS), size))


def as_vocab(vocab: Vocab | int) -> Vocab:
    """``vocab`` itself, or a :func:`placeholder_vocab` of that size."""
    if isinstance(vocab, Vocab):
        return vocab
    if isinstance(vocab, bool) or not isinstance(vocab, int):
        raise ConfigError(f"vocab must be a searnn Vocab or a vocabulary size, got {type(vocab).__name__}")
    return placeholder_vocab(vocab)


def make_batch(
    src: torch.Tensor, src_len: torch.Tensor, tgt: torch.Tensor, tgt_len: torch.Tensor,
    device: torch.device | str | None = None,
) -> Batch:
    """A :class:`Batch` from user tensors: ``tgt (B, T)`` without EOS, ``tgt_len (B,)`` tokens -> the batch's
    ``tgt (B, T+1)`` with one EOS and ``tgt_len + 1``."""
    if src.dim() != 3:
        raise ConfigError(f"src must be (B, S, K) long or (B, S, F) float, got shape {tuple(src.shape)}")
    if tgt.dim() != 2 or tgt.shape[0] != src.shape[0]:
        raise ConfigError(f"tgt must be (B, T) long with B = {src.shape[0]}, got shape {tuple(tgt.shape)}")
    device = tgt.device if device is None else torch.device(device)
    host = mark_host(src_len.long().clone()) if src_len.device.type == "cpu" else None  # for the encoder's packing
    src, src_len = src.to(device), src_len.to(device).long()
    tgt, tgt_len = tgt.to(device).long(), tgt_len.to(device).long()
    b, t = tgt.shape
    cols = torch.arange(t + 1, device=device)[None, :]
    padded = torch.cat([tgt, tgt.new_full((b, 1), PAD_ID)], dim=1)
    out = torch.where(cols < tgt_len[:, None], padded, torch.full_like(padded, PAD_ID))
    out = torch.where(cols == tgt_len[:, None], torch.full_like(out, EOS_ID), out)
    width = int(tgt_len.max()) + 1 if b else 1
    return Batch(src, src_len, out[:, :width], tgt_len + 1, torch.arange(b, device=device), src_len_host=host)


def minimal_task(
    vocab: Vocab, fixed_length: bool, cost: str, train_targets: Sequence[Sequence[int]] | None = None
) -> TaskData:
    """The task description an objective needs, without data files: the target vocabulary, the output length
    rule, the default cost and (optional) the training targets (as examples with empty sources)."""
    train = [Example(src=np.zeros((0, 1), dtype=np.float32), tgt=list(t)) for t in (train_targets or [])]
    return TaskData(
        name="api", train=train, valid=[], test=[], tgt_vocab=vocab, src_vocabs=[], src_feature_dim=None,
        fixed_length=fixed_length, metric="edit", cost=cost, lower_is_better=True,
        parse_source=lambda line: [[int(x)] for x in line.split()],
        format_output=lambda ids: " ".join(map(str, ids)),
    )


def objective_options(objective: str) -> dict[str, Any]:
    """Every field of the objective's config class with its default."""
    out = {}
    for f in dataclasses.fields(OBJECTIVES[objective].config_class):
        has_factory = f.default_factory is not dataclasses.MISSING
        out[f.name] = f.default_factory() if has_factory else f.default  # type: ignore[misc]
    return out


class ObjectiveLoss:
    """A registered objective as ``loss(model, src, src_len, tgt, tgt_len) -> LossOutput`` (module docstring).

    Subclasses set :attr:`objective`; :meth:`start_epoch` forwards the epoch to schedules (roll-in schedule,
    per-epoch similarity refresh)."""

    objective: ClassVar[str] = "mle"

    def __init__(
        self, vocab: Vocab | int | None = None, *, fixed_length: bool = False,
        train_targets: Sequence[Sequence[int]] | None = None, **options: Any,
    ):
        cls = OBJECTIVES[self.objective].config_class
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(options) - set(names))
        if unknown:
            raise ConfigError(
                f"{type(self).__name__}: unknown option {unknown[0]!r}; "
                f"valid: {', '.join(sorted(names + list(TASK_KEYWORDS)))}"
            )
        for name, value in options.items():
            check_value(name, value)
        try:
            self.config = cls(**options)
        except ConfigError as e:
            raise ConfigError(f"{type(self).__name__}: {e}") from None
        self.fixed_length = bool(fixed_length)
        self.train_targets = train_targets
        self.vocab = None if vocab is None else as_vocab(vocab)
        self._objective: Objective | None = None
        self._wrapped: tuple[torch.nn.Module, torch.nn.Module] | None = None
        self._epoch: tuple[int, int] | None = None

    @classmethod
    def options(cls) -> dict[str, Any]:
        """Every option of the objective with its default."""
        return objective_options(cls.objective)

    def build(self, vocab_size: int) -> Objective:
        """The wrapped objective (built on first use, when the vocabulary size may come from the model)."""
        if self._objective is None:
            if self.vocab is None:
                self.vocab = placeholder_vocab(vocab_size)
            cost = getattr(self.config, "cost", "") or "edit"
            task = minimal_task(self.vocab, self.fixed_length, cost, self.train_targets)
            self._objective = OBJECTIVES[self.objective](self.config, task)
            if self._epoch is not None:
                self._objective.start_epoch(*self._epoch)
        return self._objective

    def start_epoch(self, epoch: int, total_epochs: int) -> None:
        """Tell the objective that epoch ``epoch`` (0-based) of ``total_epochs`` starts."""
        self._epoch = (epoch, total_epochs)
        if self._objective is not None:
            self._objective.start_epoch(epoch, total_epochs)

    def model_for(self, model: torch.nn.Module) -> torch.nn.Module:
        """``model`` as searnn's objectives call it (:func:`searnn.protocol.as_searnn_model`, cached)."""
        if self._wrapped is None or self._wrapped[0] is not model:
            size = len(self.vocab) if self.vocab is not None else None
            self._wrapped = (model, as_searnn_model(model, size))
        wrapped = self._wrapped[1]
        if wrapped is not model:
            wrapped.train(model.training)
        return wrapped

    def __call__(
        self, model: torch.nn.Module, src: torch.Tensor, src_len: torch.Tensor, tgt: torch.Tensor,
        tgt_len: torch.Tensor,
    ) -> LossOutput:
        """The objective's loss on one batch (see the module docstring for the tensors)."""
        wrapped = self.model_for(model)
        size = int(wrapped.tgt_vocab_size)
        objective = self.build(size)
        if self.vocab is not None and len(self.vocab) != size:
            raise ConfigError(f"vocab has {len(self.vocab)} ids but the model's tgt_vocab_size is {size}")
        param = next(iter(model.parameters()), None)
        device = param.device if param is not None else tgt.device
        return objective(wrapped, make_batch(src, src_len, tgt, tgt_len, device))


def _loss_class(name: str, objective: str, summary: str) -> type[ObjectiveLoss]:
    """A subclass of :class:`ObjectiveLoss` for ``objective`` whose signature lists its options."""
    config = OBJECTIVES[objective].config_class
    params = [
        inspect.Parameter("vocab", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None),
        inspect.Parameter("fixed_length", inspect.Parameter.KEYWORD_ONLY, default=False),
        inspect.Parameter("train_targets", inspect.Parameter.KEYWORD_ONLY, default=None),
    ]
    lines = []
    for key, default in objective_options(objective).items():
        params.append(inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY, default=default))
        help_text = next(f.metadata.get("help", "") for f in dataclasses.fields(config) if f.name == key)
        lines.append(f"* ``{key}={default!r}``: {help_text}")
    doc = f"{summary} (objective ``{objective}``) as a loss object; see :mod:`searnn.api`.\n\nOptions:\n\n"
    doc += "\n".join(lines)
    cls = type(name, (ObjectiveLoss,), {"objective": objective, "__doc__": doc, "__module__": __name__})
    cls.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    return cls


SearnnLoss = _loss_class("SearnnLoss", "searnn", "SeaRNN (Leblond et al. 2018)")
SearnnTokLoss = _loss_class("SearnnTokLoss", "searnn-tok", "SeaRNN with token smoothing on the rolled-out cells")
TokenSmoothingLoss = _loss_class(
    "TokenSmoothingLoss", "token-smoothing", "Token-level loss smoothing (Elbayad et al. 2018)"
)
SeqSmoothingLoss = _loss_class("SeqSmoothingLoss", "seq-smoothing", "Sequence-level loss smoothing (RAML)")
TokSeqLoss = _loss_class("TokSeqLoss", "tok-seq", "Token- and sequence-level smoothing combined")
MleLoss = _loss_class("MleLoss", "mle", "Teacher-forced cross-entropy")
LabelSmoothingLoss = _loss_class("LabelSmoothingLoss", "label-smoothing", "Uniform label smoothing")
EntropyRegLoss = _loss_class("EntropyRegLoss", "entropy-reg", "MLE with a confidence penalty")

LOSSES: dict[str, type[ObjectiveLoss]] = {
    cls.objective: cls
    for cls in (SearnnLoss, SearnnTokLoss, TokenSmoothingLoss, SeqSmoothingLoss, TokSeqLoss, MleLoss,
                LabelSmoothingLoss, EntropyRegLoss)
}
"""Loss class of every registered objective name."""


def make_loss(objective: str, vocab: Vocab | int | None = None, **options: Any) -> ObjectiveLoss:
    """The loss object of a registered objective name (``'searnn'``, ``'tok-seq'``, ...)."""
    if objective not in LOSSES:
        raise ConfigError(f"unknown objective {objective!r}; valid: {', '.join(sorted(LOSSES))}")
    return LOSSES[objective](vocab, **options)


def metric(
    name: str, hyps: Sequence[Sequence[int]], refs: Sequence[Sequence[int]] | Sequence[Sequence[Sequence[int]]],
    vocab: Vocab | int | None = None,
) -> Any:
    """A corpus metric (:data:`searnn.metrics.METRICS`) on lists of ids (no BOS/EOS): ``refs`` holds one
    reference per hypothesis (a list of ids) or a list of references each. ``vocab``: needed by ``bleu``
    / ``f1`` (token strings); a size or None gives placeholder tokens. Returns a ``MetricResult``."""
    from searnn.metrics import METRICS

    if name not in METRICS:
        raise ConfigError(f"unknown metric {name!r}; valid: {', '.join(sorted(METRICS))}")
    hyp_lists = [[int(x) for x in h] for h in hyps]
    ref_lists: list[list[list[int]]] = []
    for r in refs:
        if len(r) and isinstance(r[0], (list, tuple)):
            ref_lists.append([[int(x) for x in one] for one in r])  # type: ignore[union-attr]
        else:
            ref_lists.append([[int(x) for x in r]])  # type: ignore[arg-type]
    if vocab is None:
        top = max([max(s, default=0) for s in hyp_lists] + [max(s, default=0) for rs in ref_lists for s in rs] + [4])
        vocab = top + 1
    return METRICS[name](hyp_lists, ref_lists, as_vocab(vocab))


def sequence_cost(
    cost: Any, hyps: Sequence[Sequence[int]] | torch.Tensor, refs: Sequence[Sequence[int]] | torch.Tensor,
    hyp_len: torch.Tensor | None = None, ref_len: torch.Tensor | None = None,
) -> torch.Tensor:
    """``(N,)`` per-sequence costs of a :class:`searnn.costs.Cost` on lists of ids or padded tensors (with
    their lengths; a tensor without lengths counts every column)."""
    from searnn.costs.base import pad_sequences

    def tensors(
        x: Sequence[Sequence[int]] | torch.Tensor, n: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(x, torch.Tensor):
            lengths = n if n is not None else torch.full((x.shape[0],), x.shape[1], dtype=torch.long)
            return x.long(), lengths.to(x.device).long()
        return pad_sequences([list(map(int, s)) for s in x])

    h, hl = tensors(hyps, hyp_len)
    r, rl = tensors(refs, ref_len)
    return cost(h, hl, r.to(h.device), rl.to(h.device))
