"""Sequence-level loss smoothing (RAML) and its combination with token smoothing.

Elbayad, Besacier, Verbeek (ACL 2018), sec. 3.2 and 3.4, building on Norouzi et al. (2016):

* eq. (8)-(12): the sequence Dirac is replaced by ``r(y | y*) ∝ exp(r(y, y*) / tau)``; the expectation
  ``E_r[-log p(y | x)]`` is estimated with L samples per source drawn from the Hamming (or edit)
  stratified proposal q (:mod:`searnn.smoothing.sampling`) and **self-normalised importance weights per
  source** ``w_l ∝ exp(r(y^l, y*) / tau) / q(y^l | y*)`` (eq. 11). With ``reward: hamming`` and
  ``reward_tau == proposal_tau`` the weights are uniform: exact stratified sampling.
* eq. (15): ``loss = alpha * sum_l w_l l(y^l) + (1 - alpha) * l(y*)``.
* eq. (18) vs (19): ``lazy: false`` re-forwards every sample as decoder input (teacher forcing on y^l);
  ``lazy: true`` reads the samples' log-probabilities off the ground truth's forward pass,
  ``-sum_t log p(y^l_t | h*_t)``: one forward pass in all.
* eq. (17), ``tok-seq``: every sequence loss (ground truth and samples) is itself the token-smoothed
  loss ``alpha2 * l_Tok + (1 - alpha2) * l_MLE``; ``alpha1`` weighs the sequence-level part.

Substitution vocabularies (sec. 3.2): ``full`` (V), ``batch`` (V_batch), ``refs`` (V_refs).
Sequence losses are normalised like MLE: with ``cell-per-seq`` each sequence's loss is its mean cell
loss (a sample by its own length), ``cell-global`` divides by the weighted number of cells, ``batch``
by B. Everything is batched tensor code on the model's device.

The proposal's ``(|V_sub| - 1)^d`` factor makes the mean distance very sensitive to ``proposal_tau``
around ``1 / log|V_sub|``. Measured mean d on Multi30k De->En (batches of 64, 12 target tokens on
average, |V| = 5,921): V_batch: tau 0.1 -> 0.14, 0.15 -> 3.0, 0.2 -> 7.4; V: 0.1 -> 2.4, 0.15 -> 9.9;
V_refs: 0.2 -> 0.7, 0.3 -> 2.9. With the defaults (V_batch, 0.15) the reward temperatures 0.02 (BLEU)
and 0.2 (CIDEr-D) keep the importance-weighted mean distance close to the proposal's (about 3), at an
effective sample size of about 1.3 of 5: importance sampling with these peaked rewards is high-variance,
watch ``seq_ess``.

Per-step logs: ``seq_distance`` (mean sampled distance d), ``seq_reward`` (mean reward of the
samples), ``seq_ess`` (mean effective sample size ``1 / sum_l w_l^2`` per source, in [1, L]),
``seq_w_max`` (mean largest weight), and ``tok_self_mass`` with token smoothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from searnn.data.batch import Batch
from searnn.data.task import TaskData
from searnn.data.vocab import BOS_ID
from searnn.errors import ConfigError, unknown_name
from searnn.objectives.base import LossOutput, Objective, ObjectiveConfig, normalize
from searnn.objectives.token_smoothing import (
    TokenOptions,
    TokenSmoother,
    check_normalization,
    check_positive,
    check_unit_interval,
    mixed_cell_loss,
)
from searnn.smoothing import rewards as rewlib
from searnn.smoothing import sampling
from searnn.smoothing.references import ReferenceTable

PROPOSALS = ("edit", "hamming")
SUB_VOCABS = ("batch", "full", "refs")
DEFAULT_REWARD_TAU = {"hamming": None, "edit": None, "bleu": 0.02, "cider": 0.2}
"""reward_tau used when the option is 0; None = proposal_tau (the reward is minus a distance in tokens,
on the proposal's scale). BLEU is in [0, 1] and CIDEr-D in [0, 10], hence smaller temperatures."""


@dataclass
class SeqOptions(ObjectiveConfig):
    """Options of sequence-level smoothing (shared by seq-smoothing and tok-seq)."""

    reward: str = field(
        default="hamming",
        metadata={"help": "sequence reward r(y, y*) of eq. 8: hamming (-mismatches) | edit (-Levenshtein) | "
                  "bleu (sentence BLEU-4, sacrebleu exp smoothing) | cider (CIDEr-D, training document "
                  "frequencies); anything but hamming is importance-sampled (eq. 11)"},
    )
    reward_tau: float = field(
        default=0.0,
        metadata={"help": "temperature of r(y|y*) ∝ exp(r(y, y*)/tau) (eq. 8); 0 = reward default: "
                  "proposal_tau for hamming/edit, 0.02 for bleu, 0.2 for cider"},
    )
    proposal: str = field(
        default="hamming",
        metadata={"help": "stratified proposal: hamming (d substitutions, exact q) | edit (d substitutions, "
                  "insertions or deletions; needs lazy: false)"},
    )
    proposal_tau: float = field(
        default=0.15,
        metadata={"help": "temperature of the proposal's distance prior p(d) ∝ C(T,d) (|V_sub|-1)^d "
                  "exp(-d/tau); keep 1/tau above log|V_sub| or most tokens get replaced (see the module "
                  "docstring for the mean distance per pool)"},
    )
    sub_vocab: str = field(
        default="batch",
        metadata={"help": "substitution vocabulary: full (V) | batch (tokens of the batch's references, "
                  "V_batch) | refs (tokens of the source's own references, V_refs)"},
    )
    num_samples: int = field(
        default=5, metadata={"help": "samples L per source; importance weights are normalised over them"}
    )
    lazy: bool = field(
        default=True,
        metadata={"help": "lazy evaluation (eq. 19): score samples with the ground truth's hidden states "
                  "(one forward pass); false = re-forward every sample (eq. 18)"},
    )

    def __post_init__(self) -> None:
        check_normalization(self.normalization)
        if self.reward not in rewlib.REWARD_NAMES:
            raise unknown_name("reward", self.reward, rewlib.REWARD_NAMES)
        if self.proposal not in PROPOSALS:
            raise unknown_name("proposal", self.proposal, PROPOSALS)
        if self.sub_vocab not in SUB_VOCABS:
            raise unknown_name("sub_vocab", self.sub_vocab, SUB_VOCABS)
        check_positive("proposal_tau", self.proposal_tau)
        if self.reward_tau < 0:
            raise ConfigError(f"reward_tau must be > 0 (or 0 for the reward's default), got {self.reward_tau}")
        if self.num_samples < 1:
            raise ConfigError(f"num_samples must be >= 1, got {self.num_samples}")
        if self.proposal == "edit" and self.lazy:
            raise ConfigError(
                "proposal: edit changes sequence lengths, but lazy evaluation (eq. 19) scores a sample with the "
                "ground truth's hidden states, which exist for the ground-truth length only; set lazy: false"
            )

    @property
    def effective_reward_tau(self) -> float:
        if self.reward_tau > 0:
            return self.reward_tau
        default = DEFAULT_REWARD_TAU[self.reward]
        return self.proposal_tau if default is None else default


def importance_weights(reward: Tensor, reward_tau: float, log_q: Tensor) -> Tensor:
    """Self-normalised importance weights per source (eq. 11).

    reward, log_q: ``(B, L)``. ``w = softmax_l(reward / tau - log q)``, ``(B, L)``, rows sum to 1.
    """
    return torch.softmax(reward / reward_tau - log_q, dim=1)


def combine_sequence_losses(
    gt_cell: Tensor,
    gt_mask: Tensor,
    s_cell: Tensor,
    s_mask: Tensor,
    weights: Tensor,
    alpha: float,
    mode: str,
) -> tuple[Tensor, float]:
    """Eq. (15): ``alpha * sum_l w_l l(y^l) + (1 - alpha) * l(y*)``, normalised like :func:`normalize`.

    gt_cell, gt_mask: ``(B, T)``; s_cell, s_mask: ``(B, L, T')``; weights: ``(B, L)``.
    Returns (scalar loss, denominator).
    """
    gt_cell = torch.where(gt_mask, gt_cell, torch.zeros_like(gt_cell))
    s_cell = torch.where(s_mask, s_cell, torch.zeros_like(s_cell))
    gt_sum, gt_n = gt_cell.sum(1), gt_mask.sum(1).float()  # (B,)
    s_sum, s_n = s_cell.sum(2), s_mask.sum(2).float()  # (B, L)
    if mode == "cell-per-seq":
        has = gt_n > 0
        per = (1 - alpha) * gt_sum / gt_n.clamp(min=1) + alpha * (weights * s_sum / s_n.clamp(min=1)).sum(1)
        denom = float(max(int(has.sum()), 1))
        return per[has].sum() / denom, denom
    total = (1 - alpha) * gt_sum.sum() + alpha * (weights * s_sum).sum()
    if mode == "cell-global":
        count = (1 - alpha) * gt_n.sum() + alpha * (weights * s_n).sum()
        denom = max(float(count), 1.0)
        return total / denom, denom
    if mode == "batch":
        denom = float(gt_cell.shape[0])
        return total / denom, denom
    raise unknown_name("normalization", mode, ("batch", "cell-global", "cell-per-seq"))


class SequenceSampler:
    """Draws the L perturbed references of a batch and their importance weights (no autograd)."""

    def __init__(self, options: SeqOptions, task: TaskData):
        self.options = options
        self.vocab_size = len(task.tgt_vocab)
        self.references = ReferenceTable(task.train)
        documents = self.references.documents() if options.reward == "cider" else None
        self.reward_fn = rewlib.make_reward(options.reward, self.vocab_size, documents)
        self.reward_tau = options.effective_reward_tau

    def pool(self, refs: Tensor, ref_len: Tensor) -> sampling.SubstitutionPool:
        b = refs.shape[0]
        if self.options.sub_vocab == "full":
            return sampling.full_pool(self.vocab_size, b, refs.device)
        valid = torch.arange(refs.shape[2], device=refs.device) < ref_len[..., None]  # (B, R, T')
        flat, flat_valid = refs.reshape(b, -1), valid.reshape(b, -1)
        if self.options.sub_vocab == "batch":
            return sampling.batch_pool(flat, flat_valid, self.vocab_size)
        return sampling.refs_pool(flat, flat_valid, self.vocab_size)

    @torch.no_grad()
    def __call__(self, batch: Batch) -> tuple[sampling.Samples, Tensor, dict[str, float]]:
        """Returns (samples, weights ``(B, L)``, logs)."""
        o = self.options
        refs, ref_len = self.references.batch_refs(batch)  # (B, R, T'), (B, R)
        lengths = batch.tgt_len - 1
        pool = self.pool(refs, ref_len)
        draw = sampling.hamming_sample if o.proposal == "hamming" else sampling.edit_sample
        samples = draw(batch.tgt, lengths, pool, o.num_samples, o.proposal_tau)
        b, num, ts = samples.tokens.shape
        hyp = samples.tokens.reshape(b * num, ts)
        hyp_len = samples.lengths.reshape(-1)
        r = refs.shape[1]
        refs_e = refs[:, None].expand(b, num, r, refs.shape[2]).reshape(b * num, r, refs.shape[2])
        ref_len_e = ref_len[:, None].expand(b, num, r).reshape(b * num, r)
        reward = self.reward_fn(hyp, hyp_len, refs_e, ref_len_e).view(b, num).float()
        weights = importance_weights(reward, self.reward_tau, samples.log_q)
        ess = 1.0 / weights.pow(2).sum(1)
        logs = {
            "seq_distance": float(samples.distance.float().mean()),
            "seq_reward": float(reward.mean()),
            "seq_ess": float(ess.mean()),
            "seq_w_max": float(weights.amax(1).mean()),
        }
        return samples, weights, logs


def _decoder_input(tokens: Tensor) -> Tensor:
    """``(N, T)`` targets -> BOS followed by the targets shifted right."""
    bos = torch.full_like(tokens[:, :1], BOS_ID)
    return torch.cat([bos, tokens[:, :-1]], 1)


class _SmoothingCore:
    """Shared implementation of eq. (15)-(19) for ``seq-smoothing`` and ``tok-seq``."""

    def __init__(self, seq: SeqOptions, tok: TokenOptions | None, alpha_seq: float, alpha_tok: float,
                 task: TaskData):
        self.seq = seq
        self.alpha_seq = alpha_seq
        self.alpha_tok = alpha_tok
        self.sampler = SequenceSampler(seq, task)
        self.smoother = TokenSmoother(tok, task) if tok is not None else None

    def loss(self, model: torch.nn.Module, batch: Batch) -> LossOutput:
        mask = batch.tgt_mask  # (B, T)
        mode = self.seq.normalization
        use_tok = self.smoother is not None and self.alpha_tok > 0
        smoother = self.smoother if use_tok else None
        logs: dict[str, float] = {}
        if self.alpha_seq <= 0:
            logits = model(batch.src, batch.src_len, batch.decoder_input)  # (B, T, V)
            if smoother is not None:
                smoother.prepare(model, logits.device)
            logp = F.log_softmax(logits.float(), dim=-1)
            cell, _ = mixed_cell_loss(logp, batch.tgt[:, None, :], smoother, self.alpha_tok)
            loss, denom = normalize(cell[:, 0], mask, mode)
            return LossOutput(loss, denom, logs)

        samples, weights, logs = self.sampler(batch)
        b, num, ts = samples.tokens.shape
        s_mask = torch.arange(ts, device=mask.device) <= samples.lengths[..., None]  # tokens + EOS cell
        if self.seq.lazy:  # eq. (19): one forward pass of the ground truth
            logits = model(batch.src, batch.src_len, batch.decoder_input)  # (B, T, V)
            if smoother is not None:
                smoother.prepare(model, logits.device)
            logp = F.log_softmax(logits.float(), dim=-1)
            tokens = torch.cat([batch.tgt[:, None, :], samples.tokens], 1)  # (B, 1+L, T)
            cell, _ = mixed_cell_loss(logp, tokens, smoother, self.alpha_tok)
            gt_cell, s_cell = cell[:, 0], cell[:, 1:]
            gt_logits = logits
        else:  # eq. (18): every sample re-forwarded, in one call together with the ground truth
            t = batch.tgt.shape[1]
            width = max(t, ts)
            gt = F.pad(batch.tgt, (0, width - t))
            sm = F.pad(samples.tokens, (0, width - ts)).reshape(b * num, width)
            rows = torch.cat([gt, sm], 0)  # (B + B L, W)
            src = torch.cat([batch.src, batch.src.repeat_interleave(num, 0)], 0)
            src_len = torch.cat([batch.src_len, batch.src_len.repeat_interleave(num, 0)], 0)
            logits = model(src, src_len, _decoder_input(rows))  # (B + B L, W, V)
            if smoother is not None:
                smoother.prepare(model, logits.device)
            logp = F.log_softmax(logits.float(), dim=-1)
            cell, _ = mixed_cell_loss(logp, rows[:, None, :], smoother, self.alpha_tok)
            cell = cell[:, 0]  # (B + B L, W)
            gt_cell = cell[:b, :t]
            gt_logits = logits[:b, :t]
            s_cell = cell[b:].reshape(b, num, width)[..., :ts]
        loss, denom = combine_sequence_losses(gt_cell, mask, s_cell, s_mask, weights, self.alpha_seq, mode)
        if smoother is not None:
            logs.update(smoother.stats(batch.tgt, mask, top1=gt_logits.detach().argmax(-1)))
        return LossOutput(loss, denom, logs)


@dataclass
class SeqSmoothingConfig(SeqOptions):
    """Sequence-level smoothing (eq. 15)."""

    alpha: float = field(
        default=0.3,
        metadata={"help": "weight of the smoothed sequence distribution (eq. 15): alpha*E_r[l(y)] + "
                  "(1-alpha)*l(y*); 0 = MLE"},
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        check_unit_interval("alpha", self.alpha)


class SeqSmoothing(Objective):
    """Sequence-level loss smoothing (RAML with importance sampling, restricted vocabularies, lazy mode):
    eq. (8)-(12), (15), (18)/(19) of Elbayad et al. (2018)."""

    config_class = SeqSmoothingConfig
    config: SeqSmoothingConfig

    def __init__(self, config: SeqSmoothingConfig, task: TaskData):
        super().__init__(config, task)
        self.core = _SmoothingCore(config, None, config.alpha, 0.0, task)

    def __call__(self, model: torch.nn.Module, batch: Batch) -> LossOutput:
        return self.core.loss(model, batch)


@dataclass
class TokSeqConfig(SeqOptions, TokenOptions):
    """Token- and sequence-level smoothing combined (eq. 17)."""

    alpha1: float = field(
        default=0.3,
        metadata={"help": "sequence-level weight (eq. 17): alpha1*E_r[l_tok(y)] + (1-alpha1)*l_tok(y*)"},
    )
    alpha2: float = field(
        default=0.3,
        metadata={"help": "token-level weight inside every sequence loss (eq. 17): "
                  "l_tok = alpha2*l_Tok + (1-alpha2)*l_MLE"},
    )

    def __post_init__(self) -> None:
        SeqOptions.__post_init__(self)
        TokenOptions.__post_init__(self)
        check_unit_interval("alpha1", self.alpha1)
        check_unit_interval("alpha2", self.alpha2)


class TokSeq(Objective):
    """Tok-Seq smoothing, eq. (17) of Elbayad et al. (2018): token smoothing applied to the ground truth
    and to every sequence sampled for sequence smoothing."""

    config_class = TokSeqConfig
    config: TokSeqConfig

    def __init__(self, config: TokSeqConfig, task: TaskData):
        super().__init__(config, task)
        self.core = _SmoothingCore(config, config, config.alpha1, config.alpha2, task)

    def start_epoch(self, epoch: int, total_epochs: int) -> None:
        if self.core.smoother is not None:
            self.core.smoother.start_epoch(epoch)

    def state_dict(self) -> dict[str, Any]:
        """The token smoother's state (the sequence sampler draws from the global RNGs, saved by ``last.pt``,
        and holds no state that changes over training)."""
        return {"smoother": self.core.smoother.state_dict()} if self.core.smoother is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.core.smoother is not None:
            self.core.smoother.load_state_dict(state.get("smoother", {}))

    def __call__(self, model: torch.nn.Module, batch: Batch) -> LossOutput:
        return self.core.loss(model, batch)
