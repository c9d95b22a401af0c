"""Token-level loss smoothing (Elbayad, Besacier, Verbeek, ACL 2018, sec. 3.3-3.4, eq. 13, 14, 16).

Each ground-truth token's Dirac is replaced by ``r(y_t | y*_t) ∝ exp(r(y_t, y*_t) / tau)`` (eq. 13), the
token reward being the cosine similarity of word vectors, optionally minus the rare-token promotion
``beta * min(f(y)/f(y*), f(y*)/f(y))`` (eq. 14). Mixed with the Dirac (eq. 16)::

    loss_t = (1 - alpha) * CE(y*_t) + alpha * D(r(. | y*_t) || p_theta(. | h*_t))

with D the KL divergence (``divergence: kl``) or the cross-entropy (``ce``; they differ by the
target's entropy, a constant). r is supported on the ``top_k`` most similar tokens of y*_t
(:mod:`searnn.smoothing.similarity`); ``similarity: uniform`` is the constant-similarity case,
i.e. uniform label smoothing over the whole vocabulary minus PAD/BOS/UNK, computed exactly.

Differences from the authors' code (docs/METHODS.md §7.2): similarities are the paper's cosine, not
``(1 + cos) / 2``; eq. 14's penalty is divided by tau with the similarity (the code subtracted
``tau * beta * F`` first); storage is ``O(V k)``, never a dense ``V x V`` matrix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from searnn.data.batch import Batch
from searnn.data.task import REPO_DATA, TaskData
from searnn.data.vocab import EOS_ID
from searnn.errors import ConfigError, unknown_name
from searnn.objectives.base import NORMALIZATIONS, LossOutput, Objective, ObjectiveConfig, normalize
from searnn.smoothing import similarity as simlib

SIMILARITIES = ("glove", "model", "train", "uniform")
DIVERGENCES = ("ce", "kl")
DEFAULT_EMBEDDINGS = REPO_DATA / "glove" / "glove.6B.50d.subset.txt.gz"


def check_normalization(mode: str) -> None:
    if mode not in NORMALIZATIONS:
        raise unknown_name("normalization", mode, NORMALIZATIONS)


def check_unit_interval(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name} must be in [0, 1], got {value}")


def check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise ConfigError(f"{name} must be > 0, got {value}")


@dataclass
class TokenOptions(ObjectiveConfig):
    """Options of the token-level target distribution (shared by token-smoothing and tok-seq)."""

    tok_tau: float = field(
        default=0.1,
        metadata={"help": "temperature of the token target r(y|y*) ∝ exp(sim(y, y*)/tau) (eq. 13); "
                  "small = close to the Dirac"},
    )
    similarity: str = field(
        default="glove",
        metadata={"help": "token similarity: glove (word vectors from embeddings_path) | train (PPMI+SVD "
                  "vectors fit on the training targets) | model (the model's output embeddings, refreshed "
                  "every refresh_every steps) | uniform (constant similarity = label smoothing)"},
    )
    embeddings_path: str = field(
        default="",
        metadata={"help": "GloVe-format text file (.gz allowed) for similarity=glove; '' = the shipped "
                  "data/glove/glove.6B.50d.subset.txt.gz"},
    )
    top_k: int = field(
        default=50,
        metadata={"help": "neighbours kept per token (the target's support, itself included); storage V*k"},
    )
    beta: float = field(
        default=0.0,
        metadata={"help": "rare-token promotion (eq. 14): subtract beta*min(f(y)/f(y*), f(y*)/f(y)) from the "
                  "similarity before dividing by tok_tau (so beta is on the cosine's scale: 0.05 at tok_tau "
                  "0.1 multiplies a same-frequency token's weight by exp(-0.5)); 0 = off"},
    )
    divergence: str = field(
        default="kl",
        metadata={"help": "smoothed term: kl (KL(r || p), 0 at a perfect fit) | ce (cross-entropy; same "
                  "gradient)"},
    )
    train_dim: int = field(
        default=50, metadata={"help": "similarity=train: dimension of the PPMI+SVD vectors"}
    )
    train_window: int = field(
        default=2, metadata={"help": "similarity=train: co-occurrence window (tokens on each side)"}
    )
    refresh_every: int = field(
        default=0,
        metadata={"help": "similarity=model: recompute the neighbours every N training steps; 0 = at the "
                  "start of every epoch"},
    )

    def __post_init__(self) -> None:
        check_normalization(self.normalization)
        check_positive("tok_tau", self.tok_tau)
        if self.similarity not in SIMILARITIES:
            raise unknown_name("similarity", self.similarity, SIMILARITIES)
        if self.divergence not in DIVERGENCES:
            raise unknown_name("divergence", self.divergence, DIVERGENCES)
        if self.top_k < 1:
            raise ConfigError(f"top_k must be >= 1, got {self.top_k}")
        if self.beta < 0:
            raise ConfigError(f"beta must be >= 0, got {self.beta}")
        if self.train_dim < 1 or self.train_window < 1:
            raise ConfigError("train_dim and train_window must be >= 1")
        if self.refresh_every < 0:
            raise ConfigError(f"refresh_every must be >= 0, got {self.refresh_every}")
        if self.embeddings_path and self.similarity == "glove" and not Path(self.embeddings_path).is_file():
            raise ConfigError(f"embeddings_path {self.embeddings_path!r}: file not found")


def training_sequences(task: TaskData) -> list[list[int]]:
    """Target token lists of the training split, extra references included."""
    seqs: list[list[int]] = []
    for ex in task.train:
        seqs.append(list(ex.tgt))
        seqs.extend(list(r) for r in ex.refs or [] if list(r) != list(ex.tgt))
    return seqs


class TokenSmoother:
    """The token-level target distribution and its loss on log-probabilities.

    Built lazily on the model's device at the first call (``model`` similarity: from the model, then
    refreshed when :meth:`maybe_refresh` says so). Stores ``indices/probs (V, k)`` and the targets'
    negative entropies ``(V,)``.
    """

    def __init__(self, options: TokenOptions, task: TaskData):
        self.options = options
        self.task = task
        self.vocab_size = len(task.tgt_vocab)
        self.sim: simlib.SparseSimilarity | None = None
        self.probs: Tensor | None = None
        self.neg_entropy: Tensor | None = None
        self.freq: Tensor | None = None
        self.steps_since_refresh = 0
        self.refresh_pending = False
        self.epoch: int | None = None  # the epoch of the last start_epoch call
        if options.beta > 0 and options.similarity != "uniform":
            seqs = [s + [EOS_ID] for s in training_sequences(task)]
            self.freq = simlib.token_frequencies(seqs, self.vocab_size)
        allowed = torch.ones(self.vocab_size, dtype=torch.bool)
        allowed[list(simlib.EXCLUDED_TARGETS)] = False
        self.uniform_size = int(allowed.sum())
        self.uniform_excluded = list(simlib.EXCLUDED_TARGETS)

    # -- building ---------------------------------------------------------------------------------

    def _vectors(self, model: torch.nn.Module) -> tuple[Tensor, Tensor | None]:
        o = self.options
        if o.similarity == "glove":
            path = o.embeddings_path or str(DEFAULT_EMBEDDINGS)
            return simlib.load_word_vectors(path, self.task.tgt_vocab)
        if o.similarity == "train":
            return simlib.ppmi_svd_vectors(
                training_sequences(self.task), self.vocab_size, dim=o.train_dim, window=o.train_window
            )
        return simlib.output_embeddings(model, self.vocab_size), None

    def build(self, model: torch.nn.Module, device: torch.device) -> None:
        """(Re)compute the neighbours and the target table on ``device``."""
        vectors, found = self._vectors(model)
        vectors = vectors.to(device)
        found = found.to(device) if found is not None else None
        self.sim = simlib.topk_cosine(vectors, self.options.top_k, found)
        probs, log_probs = simlib.target_distribution(
            self.sim, self.options.tok_tau, self.options.beta, self.freq
        )
        self.probs = probs
        self.neg_entropy = (probs * log_probs).sum(1)  # (V,)
        self.steps_since_refresh = 0
        self.refresh_pending = False

    def start_epoch(self, epoch: int) -> None:
        """Schedule the per-epoch refresh (``model`` similarity, ``refresh_every`` 0). A call for the epoch
        a restored state was saved in (a resumed run) changes nothing: the state already holds it."""
        if epoch == self.epoch:
            return
        self.epoch = epoch
        if self.options.similarity == "model" and self.options.refresh_every == 0:
            self.refresh_pending = True

    # -- resumption -------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The refresh schedule and, for the ``model`` similarity (which changes over training), the
        current table: ``indices, values, probs (V, k)``, ``neg_entropy (V,)``. The other similarities are
        rebuilt from their fixed source on first use, identically."""
        state: dict[str, Any] = {
            "epoch": self.epoch,
            "steps_since_refresh": self.steps_since_refresh,
            "refresh_pending": self.refresh_pending,
        }
        if self.options.similarity == "model" and self.sim is not None:
            state["table"] = {
                "indices": self.sim.indices, "values": self.sim.values,
                "probs": self.probs, "neg_entropy": self.neg_entropy,
            }
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; tensors move to the model's device on the next :meth:`prepare`."""
        epoch = state.get("epoch")
        self.epoch = None if epoch is None else int(epoch)
        self.steps_since_refresh = int(state.get("steps_since_refresh", 0))
        self.refresh_pending = bool(state.get("refresh_pending", False))
        table = state.get("table")
        if table is not None:
            self.sim = simlib.SparseSimilarity(table["indices"], table["values"])
            self.probs, self.neg_entropy = table["probs"], table["neg_entropy"]

    def prepare(self, model: torch.nn.Module, device: torch.device) -> None:
        """Build on first use; refresh model similarities on schedule. Call once per training step."""
        if self.options.similarity == "uniform":
            return
        o = self.options
        due = o.similarity == "model" and (
            self.refresh_pending or (o.refresh_every > 0 and self.steps_since_refresh >= o.refresh_every)
        )
        if self.sim is None or due:
            with torch.no_grad():
                self.build(model, device)
        elif self.sim.indices.device != device:
            self.sim = self.sim.to(device)
            self.probs = self.probs.to(device) if self.probs is not None else None
            self.neg_entropy = self.neg_entropy.to(device) if self.neg_entropy is not None else None
        self.steps_since_refresh += 1

    # -- loss -------------------------------------------------------------------------------------

    def columns(self, tokens: Tensor) -> Tensor:
        """Neighbour ids of every token: ``(..., ) -> (..., k)`` (empty for ``uniform``)."""
        if self.sim is None:
            return tokens.new_zeros(*tokens.shape, 0)
        return self.sim.indices[tokens]

    def loss_from_gathered(self, logp: Tensor, tokens: Tensor, gathered: Tensor) -> Tensor:
        """Smoothed token loss from pre-gathered log-probabilities.

        logp: ``(B, T, V)`` (used by ``uniform`` only); tokens: ``(B, X, T)`` target ids of X sequences
        sharing the rows of logp; gathered: ``(B, X, T, k)`` = logp at :meth:`columns` of tokens.
        Returns ``(B, X, T)``: ``D(r(. | token) || p)``.
        """
        if self.options.similarity == "uniform":
            u = uniform_cross_entropy(logp, self.uniform_excluded)[:, None, :].expand(tokens.shape)
            if self.options.divergence == "kl":
                u = u - math.log(self.uniform_size)
            return u
        assert self.probs is not None and self.neg_entropy is not None
        ce = -(self.probs[tokens] * gathered).sum(-1)
        if self.options.divergence == "kl":
            ce = ce + self.neg_entropy[tokens]
        return ce

    def stats(self, tokens: Tensor, mask: Tensor, top1: Tensor | None = None) -> dict[str, float]:
        """Mean target mass left on the ground-truth token itself (``tok_self_mass``); with ``top1`` (the
        model's argmax at the same cells) also :meth:`top1_stats`. tokens, mask, top1: ``(B, T)``."""
        if self.probs is None:
            logs = {"tok_self_mass": 1.0 / max(self.uniform_size, 1)}
        else:
            self_mass = self.probs[tokens][..., 0]
            logs = {"tok_self_mass": float((self_mass * mask).sum() / mask.sum().clamp(min=1))}
        if top1 is not None:
            logs.update(self.top1_stats(top1, tokens, mask))
        return logs

    def top1_stats(self, top1: Tensor, tokens: Tensor, mask: Tensor) -> dict[str, float]:
        """How often the model's top-1 at a training cell is a neighbour of the reference rather than it.

        top1, tokens: ``(B, T)`` long (argmax of the logits, reference token), mask ``(B, T)`` bool (cells
        trained). Over the masked cells: ``tok_top1_wrong`` = fraction with ``top1 != reference``;
        ``tok_top1_neighbour`` = fraction with ``top1 != reference`` and ``top1`` among the reference's
        ``top_k`` similarity neighbours (the target's support; ``uniform``: every token but PAD/BOS/UNK).
        One gather of the ``(B, T, k)`` neighbour ids, no loop over cells."""
        wrong = (top1 != tokens) & mask
        if self.sim is None:
            excluded = torch.tensor(self.uniform_excluded, device=top1.device)
            near = ~(top1[..., None] == excluded).any(-1)
        else:
            near = (self.sim.indices[tokens] == top1[..., None]).any(-1)
        cells = mask.sum().clamp(min=1)
        return {"tok_top1_wrong": float(wrong.sum() / cells),
                "tok_top1_neighbour": float((wrong & near).sum() / cells)}


def uniform_cross_entropy(logp: Tensor, excluded: list[int]) -> Tensor:
    """``-(1/|A|) sum_{v in A} log p(v)`` with A = all ids but ``excluded``. ``(B, T, V) -> (B, T)``."""
    size = logp.shape[-1] - len(excluded)
    total = logp.sum(-1) - logp[..., excluded].sum(-1)
    return -total / size


def mixed_cell_loss(
    logp: Tensor, tokens: Tensor, smoother: TokenSmoother | None, alpha_tok: float
) -> tuple[Tensor, Tensor]:
    """``(1 - alpha) * NLL + alpha * D(r || p)`` for X target sequences sharing logp's rows (eq. 16).

    logp: ``(B, T, V)`` log-probabilities; tokens: ``(B, X, T)``. One gather for all targets and all
    neighbours. Returns (loss ``(B, X, T)``, plain NLL ``(B, X, T)``).
    """
    b, x, t = tokens.shape
    use_tok = smoother is not None and alpha_tok > 0
    cols = tokens.permute(0, 2, 1)  # (B, T, X)
    nbr = None
    if use_tok and smoother is not None:
        nbr = smoother.columns(tokens)  # (B, X, T, k)
        k = nbr.shape[-1]
        if k:
            cols = torch.cat([cols, nbr.permute(0, 2, 1, 3).reshape(b, t, x * k)], 2)
    gathered = logp.gather(2, cols)  # (B, T, X [+ X k])
    nll = -gathered[..., :x].permute(0, 2, 1)  # (B, X, T)
    if not use_tok or smoother is None:
        return nll, nll
    k = nbr.shape[-1] if nbr is not None else 0
    nbr_logp = gathered[..., x:].reshape(b, t, x, k).permute(0, 2, 1, 3)  # (B, X, T, k)
    tok = smoother.loss_from_gathered(logp, tokens, nbr_logp)
    return (1 - alpha_tok) * nll + alpha_tok * tok, nll


@dataclass
class TokenSmoothingConfig(TokenOptions):
    """Token-level smoothing (eq. 16)."""

    alpha: float = field(
        default=0.3,
        metadata={"help": "weight of the smoothed target (eq. 16): loss = (1-alpha)*CE(y*) + alpha*D(r||p); "
                  "0 = MLE"},
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        check_unit_interval("alpha", self.alpha)


class TokenSmoothing(Objective):
    """Token-level loss smoothing, eq. (13), (14), (16) of Elbayad et al. (2018).

    ``loss = normalize((1 - alpha) * CE(y*_t) + alpha * D(r(. | y*_t) || p(. | h*_t)))`` over target cells.
    """

    config_class = TokenSmoothingConfig
    config: TokenSmoothingConfig

    def __init__(self, config: TokenSmoothingConfig, task: TaskData):
        super().__init__(config, task)
        self.smoother = TokenSmoother(config, task)

    def start_epoch(self, epoch: int, total_epochs: int) -> None:
        self.smoother.start_epoch(epoch)

    def state_dict(self) -> dict[str, Any]:
        """The token smoother's state (:meth:`TokenSmoother.state_dict`)."""
        return {"smoother": self.smoother.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.smoother.load_state_dict(state.get("smoother", {}))

    def __call__(self, model: torch.nn.Module, batch: Batch) -> LossOutput:
        logits = model(batch.src, batch.src_len, batch.decoder_input)  # (B, T, V)
        mask = batch.tgt_mask
        logp = F.log_softmax(logits.float(), dim=-1)
        if self.config.alpha > 0:
            self.smoother.prepare(model, logits.device)
        cell, nll = mixed_cell_loss(logp, batch.tgt[:, None, :], self.smoother, self.config.alpha)
        loss, denom = normalize(cell[:, 0], mask, self.config.normalization)
        logs = {"nll": float(normalize(nll[:, 0].detach(), mask, "cell-global")[0])}
        if self.config.alpha > 0:
            logs.update(self.smoother.stats(batch.tgt, mask, top1=logits.detach().argmax(-1)))
        return LossOutput(loss, denom, logs)
