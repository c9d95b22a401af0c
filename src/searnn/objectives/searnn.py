"""SeaRNN: learning to search for RNNs (Leblond et al., ICLR 2018).

One training step (docs/METHODS.md §2): roll in with the current model (or the reference), roll out every
chosen (cell, token) pair to a full sequence, score the sequences with the task cost, and train the
roll-in logits of each cell with a cost-sensitive loss against those costs. The search lives in
:mod:`searnn.search`; the losses in :mod:`searnn.objectives.cost_sensitive`. Gradients reach the model
through the roll-in logits only (the costs are constants); a single optimiser step per batch.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import torch

from searnn.costs import COSTS, make_cost
from searnn.data.batch import Batch
from searnn.data.task import TaskData
from searnn.errors import ConfigError, unknown_name
from searnn.objectives.base import NORMALIZATIONS, LossOutput, Objective, ObjectiveConfig, normalize
from searnn.objectives.cost_sensitive import KL_TIES, LOSSES, TIE_TOL
from searnn.profiling import region
from searnn.search.engine import (
    SPECIAL_TOKENS,
    STATIC_SHAPES,
    SearchOptions,
    SearchResult,
    search,
    static_unsupported,
)
from searnn.search.exploration import SAMPLERS
from searnn.search.rollin import ROLLINS
from searnn.search.rollout import MIX_PER, ROLLOUTS
from searnn.search.schedules import SCHEDULES, Progress
from searnn.search.shortlist import ROLLOUT_VOCABS, frequent_tokens


@dataclass
class SearnnConfig(ObjectiveConfig):
    """Options of the SeaRNN objective. Defaults: the paper's best OCR setting (learned roll-in, mixed
    roll-out at 0.5, KL, every token of every cell)."""

    rollin: str = field(
        default="learned",
        metadata={
            "help": "roll-in policy: reference (teacher forcing) | learned (greedy argmax fed back) | mixed "
            "(reference with probability rollin_ref_prob per sequence) | mixed-cell (per step; the reference "
            "token is the oracle's next token for the prefix)"
        },
    )
    rollin_ref_prob: float = field(
        default=0.5, metadata={"help": "probability of the reference policy for mixed / mixed-cell roll-ins"}
    )
    rollin_schedule: str = field(
        default="constant",
        metadata={
            "help": "decay of rollin_ref_prob over training: constant | linear (p*(1-x)) | sigmoid "
            "(p/(1+exp(12x-6))), x = fraction of training done"
        },
    )
    rollout: str = field(
        default="mixed",
        metadata={
            "help": "roll-out policy: reference (the cost's oracle completion) | learned (greedy decoding "
            "from the roll-in state) | mixed (reference with probability rollout_ref_prob)"
        },
    )
    rollout_ref_prob: float = field(
        default=0.5, metadata={"help": "probability of a reference roll-out in the mixed roll-out"}
    )
    mix_per: str = field(
        default="sequence",
        metadata={"help": "granularity of the mixed roll-out's draw: sequence (as the paper) | rollout"},
    )
    cost: str = field(
        default="",
        metadata={"help": "training cost: hamming | edit | bleu | f1 ('' = the task's default cost)"},
    )
    searnn_loss: str = field(
        default="kl",
        metadata={
            "help": "cost-sensitive loss: ll (eq. 3, target learning) | kl (eq. 4) | llcas (eq. 6, "
            "cost-augmented softmax) | hinge (eq. 7, structured hinge); sampled variants (sLL, sKL) "
            "normalise over the rolled-out tokens"
        },
    )
    kl_scale: float = field(
        default=100.0,
        metadata={
            "help": "alpha of the kl loss: target softmax(-alpha * (cost - min cost)); costs normalised by "
            "length move by 1/length per error, so alpha must be large (the paper used 200 for BLEU)"
        },
    )
    kl_ties: str = field(
        default="split",
        metadata={
            "help": "kl loss, tokens whose cost ties with the reference token's: split (the paper: equal "
            "target mass) | reference (their mass goes to the reference token, as LL's argmin; use it when "
            "the cost cannot tell tokens apart, e.g. B-X / I-X after O under chunk F1)"
        },
    )
    margin_scale: float = field(
        default=1.0, metadata={"help": "scale of the min-shifted costs in the llcas and hinge losses"}
    )
    sample_tokens: str = field(
        default="all",
        metadata={
            "help": "tokens rolled out per cell: all | uniform | policy (sampled from the model) | biased "
            "(sampled from softmax(logits/bias_temperature)) | topk (highest logits); always plus the "
            "reference token (and EOS on variable-length tasks)"
        },
    )
    num_tokens: int = field(
        default=5, metadata={"help": "tokens drawn per cell by the sampler, besides the forced ones"}
    )
    bias_temperature: float = field(
        default=2.0, metadata={"help": "temperature (> 1 flattens the policy) of the biased sampler"}
    )
    gt_neighbors: int = field(
        default=0, metadata={"help": "also roll out the reference tokens within +-N positions of the cell"}
    )
    num_cells: int = field(
        default=0,
        metadata={
            "help": "random cells rolled out per sequence, besides the last token cell and the EOS cell "
            "(0 = every cell)"
        },
    )
    rollout_batch_size: int = field(
        default=1024,
        metadata={"help": "most roll-out rows decoded at once (bounds memory; 512-1024 is fastest on CPU)"},
    )
    max_len_ratio: float = field(
        default=1.5,
        metadata={
            "help": "variable-length tasks: roll-ins and roll-outs stop after ceil(max_len_ratio * "
            "reference length) + max_len_extra tokens"
        },
    )
    max_len_extra: int = field(
        default=2, metadata={"help": "variable-length tasks: extra tokens allowed beyond the ratio"}
    )
    rollout_vocab: str = field(
        default="full",
        metadata={
            "help": "argmax of the learned roll-outs over: full (the whole vocabulary, the paper) | shortlist "
            "(an approximation: the batch's reference tokens, the shortlist_size most frequent target tokens, "
            "the rolled-out tokens and EOS; logs shortlist_agree, its agreement with the full argmax); the "
            "roll-in, the loss and evaluation keep the full softmax"
        },
    )
    shortlist_size: int = field(
        default=1000, metadata={"help": "rollout_vocab=shortlist: most frequent target tokens in the shortlist"}
    )
    rollout_horizon: int = field(
        default=0,
        metadata={
            "help": "learned roll-outs decode at most this many tokens, then the cost's reference policy "
            "completes the sequence (a deviation from the paper; 0 = decode to the end)"
        },
    )
    special_tokens: str = field(
        default="rollout",
        metadata={
            "help": "sample_tokens=all, the tokens no decoder emits (PAD, BOS): rollout (rolled out and in "
            "the loss: the exact full-softmax losses) | drop (neither rolled out nor in the loss)"
        },
    )

    static_shapes: str = field(
        default="auto",
        metadata={
            "help": "search engine: on (static shapes: no host synchronisation inside the step, for GPUs; "
            "slower on CPU) | off (the dynamic engine, fastest on CPU) | auto (on when the model is on a CUDA "
            "device and the options allow it)"
        },
    )

    def __post_init__(self) -> None:
        choices = {
            "normalization": NORMALIZATIONS,
            "rollin": ROLLINS,
            "rollin_schedule": tuple(SCHEDULES),
            "rollout": ROLLOUTS,
            "mix_per": MIX_PER,
            "searnn_loss": tuple(LOSSES),
            "kl_ties": KL_TIES,
            "sample_tokens": SAMPLERS,
            "rollout_vocab": ROLLOUT_VOCABS,
            "special_tokens": SPECIAL_TOKENS,
            "static_shapes": STATIC_SHAPES,
        }
        for name, valid in choices.items():
            if getattr(self, name) not in valid:
                raise unknown_name(name, getattr(self, name), valid)
        if self.cost and self.cost not in COSTS:
            raise unknown_name("cost", self.cost, list(COSTS))
        for name in ("rollin_ref_prob", "rollout_ref_prob"):
            if not 0.0 <= float(getattr(self, name)) <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")
        for name in ("kl_scale", "margin_scale"):
            if not float(getattr(self, name)) >= 0.0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if not float(self.bias_temperature) >= 1.0:
            raise ConfigError(f"bias_temperature must be >= 1 (it flattens the policy), got {self.bias_temperature!r}")
        if not float(self.max_len_ratio) >= 1.0:
            raise ConfigError(f"max_len_ratio must be >= 1, got {self.max_len_ratio!r}")
        for name, low in (("num_tokens", 1), ("gt_neighbors", 0), ("num_cells", 0), ("rollout_batch_size", 1),
                          ("max_len_extra", 0), ("shortlist_size", 0), ("rollout_horizon", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
        unsupported = static_unsupported(self.search_options()) if self.static_shapes == "on" else ""
        if unsupported:
            raise ConfigError(f"--static-shapes on does not support {unsupported}; use --static-shapes auto or off")

    def search_options(self) -> SearchOptions:
        return SearchOptions(
            rollin=self.rollin,
            rollin_ref_prob=float(self.rollin_ref_prob),
            rollout=self.rollout,
            rollout_ref_prob=float(self.rollout_ref_prob),
            mix_per=self.mix_per,
            sample_tokens=self.sample_tokens,
            num_tokens=self.num_tokens,
            bias_temperature=float(self.bias_temperature),
            gt_neighbors=self.gt_neighbors,
            num_cells=self.num_cells,
            rollout_batch_size=self.rollout_batch_size,
            max_len_ratio=float(self.max_len_ratio),
            max_len_extra=self.max_len_extra,
            rollout_vocab=self.rollout_vocab,
            rollout_horizon=self.rollout_horizon,
            special_tokens=self.special_tokens,
            static_shapes=self.static_shapes,
        )


class SearnnObjective(Objective):
    """The SeaRNN objective: ``objective(model, batch) -> LossOutput`` (see the module docstring)."""

    config_class = SearnnConfig

    def __init__(self, config: SearnnConfig, task: TaskData):
        super().__init__(config, task)
        self.config: SearnnConfig = config
        self.cost = make_cost(config.cost or task.cost, task.tgt_vocab)
        self.fixed_length = bool(task.fixed_length)
        self.options = config.search_options()
        self.loss_fn = LOSSES[config.searnn_loss]
        if config.searnn_loss == "kl" and config.kl_ties != "split":
            self.loss_fn = functools.partial(LOSSES["kl"], ties=config.kl_ties)
        self.scale = float(config.kl_scale if config.searnn_loss == "kl" else config.margin_scale)
        self.progress = Progress()
        self.frequent: torch.Tensor | None = None
        if config.rollout_vocab == "shortlist":
            self.frequent = frequent_tokens(task.train, len(task.tgt_vocab), config.shortlist_size)

    # -- schedule ----------------------------------------------------------------------------------
    def start_epoch(self, epoch: int, total_epochs: int) -> None:
        self.progress.start_epoch(epoch, total_epochs)

    def current_rollin_ref_prob(self) -> float:
        """``rollin_ref_prob`` after the schedule, at the current training progress."""
        return SCHEDULES[self.config.rollin_schedule](float(self.config.rollin_ref_prob), self.progress.value)

    def state_dict(self) -> dict[str, Any]:
        """The schedule's progress and the call counter (the search itself draws from the global RNGs,
        which ``last.pt`` saves)."""
        return {"progress": self.progress.state_dict(), "step_count": self.step_count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (a checkpoint of older versions holds ``steps_per_epoch`` only)."""
        self.progress.load_state_dict(state.get("progress", state))
        self.step_count = int(state.get("step_count", 0))

    # -- loss --------------------------------------------------------------------------------------
    def search(self, model: torch.nn.Module, batch: Batch) -> SearchResult:
        """Roll in and out, return the costs (no loss)."""
        return search(
            model, batch, self.cost, self.fixed_length, self.options, self.current_rollin_ref_prob(), self.frequent
        )

    def cell_losses(
        self, model: torch.nn.Module | None, result: SearchResult, logs: dict[str, float]
    ) -> torch.Tensor:
        """Per-cell losses ``(B, T)`` (0 outside the rolled-out cells); subclasses may add terms (and logs)."""
        del model, logs
        logits = result.rollin.logits.float()  # (B, T, V)
        b, t, v = logits.shape
        flat_logits, flat_costs, prefer = logits.reshape(b * t, v), result.costs.reshape(b * t, v), None
        compact = compact_cells(result, b, t, v)
        if compact is not None:  # the losses only read the rolled-out tokens: K columns instead of V
            columns, flat_costs, prefer = compact
            flat_logits = flat_logits.gather(1, columns)
        return self.loss_fn(
            flat_logits,
            flat_costs,
            scale=self.scale,
            prefer=result.reference.reshape(b * t) if prefer is None else prefer,
        ).view(b, t)

    def loss_from(
        self, result: SearchResult, model: torch.nn.Module | None = None, logs: dict[str, float] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, float]:
        """Per-cell losses ``(B, T)``, the scalar loss and its denominator."""
        cell_loss = self.cell_losses(model, result, {} if logs is None else logs)
        loss, denom = normalize(cell_loss, result.cell_mask, self.config.normalization)
        return cell_loss, loss, denom

    def __call__(self, model: torch.nn.Module, batch: Batch) -> LossOutput:
        self.progress.step()
        self.step_count += 1
        try:
            result = self.search(model, batch)
            # the static search keeps its counters on the device: read them here, after the step
            logs = {key: float(value) for key, value in result.stats.items()}
            with region("loss"):
                _, loss, denom = self.loss_from(result, model, logs)
        except BaseException:  # interrupted (Ctrl-C) or failed: this batch is not trained, do not count it
            self.progress.unstep()
            self.step_count -= 1
            raise
        with torch.no_grad():
            mask = result.cell_mask
            argmax = result.rollin.logits.detach().argmax(dim=-1)  # (B, T)
            # min_cost_mask at the argmax only: its cost is finite and within TIE_TOL of the cell's minimum
            low = result.costs.min(dim=-1).values  # (B, T)
            chosen = result.costs.gather(2, argmax[:, :, None]).squeeze(2)
            hit = torch.isfinite(chosen) & (chosen - low <= TIE_TOL) & mask
            logs["argmax_is_min"] = float(hit.sum()) / max(float(mask.sum()), 1.0)
            logs["rollin_cost"] = float(result.rollin_cost.float().mean())
        return LossOutput(loss, denom, logs)


def compact_cells(
    result: SearchResult, b: int, t: int, v: int, max_fraction: float = 0.25
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """The rolled-out tokens of every cell as K compact columns, K = most tokens rolled out at one cell.

    Every cost-sensitive loss reads a cell's scores and costs on its rolled-out set S only (a masked
    softmax over the finite costs), so gathering those columns gives the same losses and gradients up to
    float rounding at K/V of the cost. Returns ``(columns (B*T, K) long, costs (B*T, K) float, +inf on
    padding columns; prefer (B*T,) long, the column of each cell's reference token)`` with the columns of a
    cell in increasing token order (so the losses' lowest-id tie-break is unchanged), or None when K
    exceeds ``max_fraction * V`` (nothing to gain, e.g. ``sample_tokens='all'``) or when a rolled-out
    cell lacks its reference token (the forced tokens always include it).
    """
    cand = result.candidates
    n = len(cand)
    if n == 0:
        return None
    if cand.valid is not None:
        return _compact_static(result, b, t, v, max_fraction)
    cell = cand.b * t + cand.t  # (N,), non-decreasing: candidates come in (b, t, a) order
    counts = torch.bincount(cell, minlength=b * t)
    k = int(counts.max())
    if k > max_fraction * v:
        return None
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(n, device=cell.device) - starts[cell]
    columns = torch.zeros(b * t, k, dtype=torch.long, device=cell.device)
    columns[cell, rank] = cand.a
    costs = torch.full((b * t, k), float("inf"), dtype=result.costs.dtype, device=cell.device)
    costs[cell, rank] = result.costs[cand.b, cand.t, cand.a]
    ref = result.reference.reshape(b * t)
    hit = (columns == ref[:, None]) & torch.isfinite(costs)
    found = hit.any(dim=1)
    if bool(((counts > 0) & ~found).any()):
        return None  # a cell rolled out without its reference token: keep the dense form (its tie rules)
    prefer = torch.where(found, hit.to(torch.int8).argmax(dim=1), torch.zeros_like(ref))
    return columns, costs, prefer


def _compact_static(
    result: SearchResult, b: int, t: int, v: int, max_fraction: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """:func:`compact_cells` of the static-shape search's dense ``(B, T, A)`` candidates: K = A columns (known on
    the host), invalid slots at ``+inf`` cost; the same losses as the dynamic search's compact form (padding
    columns never count). None when A exceeds ``max_fraction * V``."""
    cand = result.candidates
    assert cand.valid is not None
    k = len(cand) // max(b * t, 1)
    if k == 0 or k > max_fraction * v:
        return None
    columns = cand.a.view(b * t, k)
    valid = cand.valid.view(b * t, k)
    costs = result.costs.reshape(b * t, v).gather(1, columns)
    costs = torch.where(valid, costs, torch.full_like(costs, float("inf")))
    ref = result.reference.reshape(b * t)
    hit = (columns == ref[:, None]) & torch.isfinite(costs)
    # the forced tokens always hold the reference token; a cell without it has no finite cost (not trained)
    prefer = hit.to(torch.int8).argmax(dim=1)
    return columns, costs, prefer
