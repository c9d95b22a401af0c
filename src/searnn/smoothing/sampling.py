"""Stratified sampling around a reference sequence (Norouzi et al. 2016; Elbayad et al. 2018, sec. 3.2).

The Hamming proposal ``q(y | y*)`` draws, for **each** sequence independently (never one distance per
batch, docs/METHODS.md §7.2):

1. a distance d in ``0..T`` (T = that sentence's length, EOS excluded) from the exact distribution
   ``p(d) ∝ C(T, d) (n - 1)^d exp(-d / tau)``, computed in log-space and normalised with logsumexp
   (n = size of the substitution pool; docs/METHODS.md §7.2: the authors' was in linear space);
2. d distinct positions among the T, uniformly, without replacement (the d smallest of T random keys);
3. for each chosen position a substitute uniformly from the pool minus the original token, so the sample is
   at Hamming distance exactly d.

The pools are ``V`` (every non-special token), ``V_batch`` (tokens of the batch's references) and
``V_refs`` (tokens of the row's own references), all without the specials PAD/BOS/EOS/UNK. A pool is a
``(B, P)`` (or shared ``(1, P)``) sorted tensor padded with a sentinel (``vocab_size``) and its sizes ``(B,)``.

Every sample comes with its exact proposal log-probability
``log q(y) = log p(d) - log C(T, d) - sum_{changed t} log n_t`` (n_t = number of admissible substitutes
at t: ``|pool| - 1`` when the original is in the pool, ``|pool|`` otherwise, e.g. for an UNK), which the
importance weights of eq. (11) need.

The edit-distance variant replaces step 3 by one of substitution / insertion (a pool token before the
position) / deletion, uniformly; its ``log q`` is the probability of the sampled edit path (several
paths can give one sequence, so it is an approximation there).

All functions are batched over rows and samples (no Python loop over them) and take an optional
``torch.Generator`` for reproducible draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from searnn.data.vocab import EOS_ID, PAD_ID

FIRST_TOKEN = 4  # ids 0..3 are PAD, BOS, EOS, UNK


def _rand(shape: tuple[int, ...], device: torch.device, generator: torch.Generator | None) -> Tensor:
    return torch.rand(shape, device=device, generator=generator)


def log_binomial(n: Tensor, k: Tensor) -> Tensor:
    """``log C(n, k)`` elementwise (float), ``-inf`` where k < 0 or k > n."""
    n, k = torch.broadcast_tensors(n.float(), k.float())
    ok = (k >= 0) & (k <= n)
    val = torch.lgamma(n + 1) - torch.lgamma(k.clamp(min=0) + 1) - torch.lgamma((n - k).clamp(min=0) + 1)
    return torch.where(ok, val, torch.full_like(val, float("-inf")))


def hamming_distance_log_probs(lengths: Tensor, num_alternatives: Tensor, tau: float, max_len: int) -> Tensor:
    """Log-probabilities of the Hamming distance, one distribution per row.

    lengths: ``(B,)`` long T_b; num_alternatives: ``(B,)`` substitutes per position (``|pool| - 1``);
    returns ``(B, max_len + 1)``: ``log p(d) = log C(T, d) + d log(n) - d / tau - logsumexp(...)``,
    ``-inf`` for d > T_b. A row with no alternative (n <= 0) puts all its mass on d = 0.
    """
    d = torch.arange(max_len + 1, device=lengths.device, dtype=torch.float)  # (D,)
    n_alt = num_alternatives.float()[:, None]
    log_alt = torch.where(n_alt > 0, torch.log(n_alt.clamp(min=1)), torch.full_like(n_alt, float("-inf")))
    per_d = torch.where(d == 0, torch.zeros_like(d * log_alt), d * log_alt)  # (B, D), 0 * -inf -> 0
    logits = log_binomial(lengths[:, None], d[None, :]) + per_d - d / tau
    return logits - torch.logsumexp(logits, 1, keepdim=True)


def sample_categorical(log_probs: Tensor, num: int, generator: torch.Generator | None = None) -> Tensor:
    """``num`` independent draws per row by the Gumbel-max trick. ``(B, D) -> (B, num)`` long."""
    u = _rand((log_probs.shape[0], num, log_probs.shape[1]), log_probs.device, generator)
    gumbel = -torch.log(-torch.log(u.clamp(min=1e-20, max=1 - 1e-7)))
    return (log_probs[:, None, :] + gumbel).argmax(-1)


# --------------------------------------------------------------------------------------------- pools


@dataclass
class SubstitutionPool:
    """Per-row substitution vocabularies: ``tokens`` sorted ascending along the last axis, padded with
    the sentinel ``vocab_size``, either ``(B, P)`` (one pool per row) or ``(1, P)`` (one pool shared by
    every row, never copied); ``sizes (B,)`` long."""

    tokens: Tensor
    sizes: Tensor

    @property
    def shared(self) -> bool:
        return self.tokens.shape[0] == 1

    def contains(self, tok: Tensor) -> tuple[Tensor, Tensor]:
        """For ``tok (B, T)``: (its index in the row's pool ``(B, T)``, whether it is there ``(B, T)``)."""
        tok = tok.contiguous()
        if self.shared:
            idx = torch.searchsorted(self.tokens[0], tok)
        else:
            idx = torch.searchsorted(self.tokens, tok)
        idx = idx.clamp(max=self.tokens.shape[1] - 1)
        return idx, self.take(idx) == tok

    def take(self, idx: Tensor) -> Tensor:
        """Pool tokens at positions ``idx (B, X)`` (clamped to the pool width). ``(B, X)``."""
        idx = idx.clamp(min=0, max=self.tokens.shape[1] - 1)
        if self.shared:
            return self.tokens[0][idx]
        return self.tokens.gather(1, idx)


def full_pool(vocab_size: int, batch_size: int, device: torch.device | str) -> SubstitutionPool:
    """``V``: every non-special token, shared by every row."""
    tokens = torch.arange(FIRST_TOKEN, max(vocab_size, FIRST_TOKEN + 1), device=device)
    sizes = torch.full((batch_size,), max(vocab_size - FIRST_TOKEN, 0), dtype=torch.long, device=device)
    return SubstitutionPool(tokens[None, :], sizes)


def _admissible(tokens: Tensor, valid: Tensor) -> Tensor:
    return valid & (tokens >= FIRST_TOKEN)


def batch_pool(ref_tokens: Tensor, valid: Tensor, vocab_size: int) -> SubstitutionPool:
    """``V_batch``: distinct non-special tokens of all references of the batch.

    ref_tokens, valid: ``(B, X)`` (each row's reference tokens, flattened). Same pool for every row.
    """
    b = ref_tokens.shape[0]
    uniq = torch.unique(ref_tokens[_admissible(ref_tokens, valid)])  # sorted
    if uniq.numel() == 0:
        uniq = torch.full((1,), vocab_size, dtype=torch.long, device=ref_tokens.device)
        size = 0
    else:
        size = uniq.numel()
    return SubstitutionPool(uniq[None, :], torch.full((b,), size, device=ref_tokens.device))


def refs_pool(ref_tokens: Tensor, valid: Tensor, vocab_size: int) -> SubstitutionPool:
    """``V_refs``: distinct non-special tokens of each row's own references. ``(B, X) -> pool``."""
    sentinel = vocab_size
    x = torch.where(_admissible(ref_tokens, valid), ref_tokens, torch.full_like(ref_tokens, sentinel))
    x = x.sort(1).values
    dup = torch.zeros_like(x, dtype=torch.bool)
    dup[:, 1:] = x[:, 1:] == x[:, :-1]
    x = torch.where(dup, torch.full_like(x, sentinel), x).sort(1).values
    sizes = (x < sentinel).sum(1)
    width = max(int(sizes.max()) if sizes.numel() else 0, 1)
    return SubstitutionPool(x[:, :width].contiguous(), sizes)


# --------------------------------------------------------------------------------------------- samplers


@dataclass
class Samples:
    """``num_samples`` perturbed copies of each reference.

    tokens: ``(B, L, T')`` long, the sample followed by EOS and PAD (T' = T for Hamming samples);
    lengths: ``(B, L)`` long, number of tokens without EOS; distance: ``(B, L)`` long, the sampled d;
    log_q: ``(B, L)`` float, the proposal's log-probability of the sample (of its edit path for ``edit``).
    """

    tokens: Tensor
    lengths: Tensor
    distance: Tensor
    log_q: Tensor


def _choose_positions(lengths: Tensor, d: Tensor, width: int, generator: torch.Generator | None) -> Tensor:
    """``(B, L, width)`` bool: d[b, l] distinct positions among the first lengths[b], uniformly."""
    b, num = d.shape
    keys = _rand((b, num, width), lengths.device, generator)
    inside = torch.arange(width, device=lengths.device) < lengths[:, None]  # (B, W)
    keys = torch.where(inside[:, None, :], keys, torch.full_like(keys, 2.0))
    rank = keys.argsort(-1).argsort(-1)  # rank of each position's key within its row
    return rank < d[..., None]


def _substitutes(
    pool: SubstitutionPool, original: Tensor, num: int, generator: torch.Generator | None
) -> tuple[Tensor, Tensor]:
    """A uniform substitute per (row, sample, position), different from ``original (B, T)``.

    Returns (tokens ``(B, L, T)``, number of admissible substitutes ``(B, T)`` long).
    """
    b, t = original.shape
    idx, present = pool.contains(original)
    n_alt = pool.sizes[:, None] - present.long()  # (B, T)
    u = (_rand((b, num, t), original.device, generator) * n_alt[:, None, :].float()).long()
    u = torch.minimum(u, (n_alt[:, None, :] - 1).clamp(min=0))
    u = u + (present[:, None, :] & (u >= idx[:, None, :])).long()  # skip the original's slot
    tokens = pool.take(u.view(b, num * t)).view(b, num, t)
    return tokens, n_alt


def hamming_sample(
    seq: Tensor,
    lengths: Tensor,
    pool: SubstitutionPool,
    num_samples: int,
    tau: float,
    generator: torch.Generator | None = None,
) -> Samples:
    """Stratified samples at an exact Hamming distance from ``seq``.

    seq: ``(B, T)`` long (tokens, then anything: EOS/PAD cells are copied unchanged);
    lengths: ``(B,)`` number of tokens that may be substituted (EOS excluded); pool: the substitutes.
    """
    b, t = seq.shape
    log_pd = hamming_distance_log_probs(lengths, pool.sizes - 1, tau, t)  # (B, T+1)
    d = sample_categorical(log_pd, num_samples, generator)  # (B, L)
    chosen = _choose_positions(lengths, d, t, generator)  # (B, L, T)
    subs, n_alt = _substitutes(pool, seq, num_samples, generator)
    tokens = torch.where(chosen, subs, seq[:, None, :])
    log_alt = torch.log(n_alt.clamp(min=1).float())  # (B, T)
    log_q = (
        log_pd.gather(1, d)
        - log_binomial(lengths[:, None], d)
        - (chosen * log_alt[:, None, :]).sum(-1)
    )
    return Samples(tokens, lengths[:, None].expand(b, num_samples), d, log_q)


SUB, INS, DEL = 0, 1, 2


def edit_sample(
    seq: Tensor,
    lengths: Tensor,
    pool: SubstitutionPool,
    num_samples: int,
    tau: float,
    generator: torch.Generator | None = None,
) -> Samples:
    """Stratified samples with d edit operations (Norouzi et al. 2016's edit-distance variant).

    d and the d positions are drawn as in :func:`hamming_sample`; each chosen position is substituted,
    deleted, or gets a pool token inserted before it (uniformly). ``tokens``: ``(B, L, T + T)`` with EOS
    after each sample's tokens. ``log_q`` is the probability of the edit path.
    """
    b, t = seq.shape
    dev = seq.device
    log_pd = hamming_distance_log_probs(lengths, pool.sizes - 1, tau, t)
    d = sample_categorical(log_pd, num_samples, generator)  # (B, L)
    chosen = _choose_positions(lengths, d, t, generator)  # (B, L, T)
    op = (_rand((b, num_samples, t), dev, generator) * 3).long().clamp(max=2)
    subs, n_alt = _substitutes(pool, seq, num_samples, generator)
    ins_u = (_rand((b, num_samples, t), dev, generator) * pool.sizes[:, None, None].float()).long()
    ins_u = torch.minimum(ins_u, (pool.sizes[:, None, None] - 1).clamp(min=0))
    inserted = pool.take(ins_u.view(b, -1)).view(b, num_samples, t)
    inside = torch.arange(t, device=dev) < lengths[:, None]  # (B, T)
    is_sub, is_ins, is_del = chosen & (op == SUB), chosen & (op == INS), chosen & (op == DEL)
    # emissions per original position: 0 (deleted), 1 (kept/substituted), 2 (insertion + original)
    emit = (inside[:, None, :].long() - is_del.long() + is_ins.long())  # (B, L, T)
    start = torch.cumsum(emit, -1) - emit  # first output slot of each original position
    new_len = emit.sum(-1)  # (B, L)
    width = 2 * t + 1
    dump = width  # scatter target for positions that emit nothing
    out = torch.full((b, num_samples, width + 1), PAD_ID, dtype=torch.long, device=dev)
    orig = seq[:, None, :].expand(b, num_samples, t)
    first_tok = torch.where(is_sub, subs, torch.where(is_ins, inserted, orig))
    first_idx = torch.where(emit > 0, start, torch.full_like(start, dump))
    out.scatter_(2, first_idx, first_tok)
    second_idx = torch.where(is_ins, start + 1, torch.full_like(start, dump))
    out.scatter_(2, second_idx, orig)
    out.scatter_(2, new_len[..., None], torch.full_like(new_len[..., None], EOS_ID))
    out = out[..., :width]
    keep = torch.arange(width, device=dev) <= new_len[..., None]
    out = torch.where(keep, out, torch.full_like(out, PAD_ID))
    log_alt = torch.log(n_alt.clamp(min=1).float())[:, None, :]  # (B, 1, T)
    log_pool = torch.log(pool.sizes.clamp(min=1).float())[:, None, None]
    log_q = (
        log_pd.gather(1, d)
        - log_binomial(lengths[:, None], d)
        - d.float() * torch.log(torch.tensor(3.0, device=dev))
        - (is_sub * log_alt).sum(-1)
        - (is_ins * log_pool).sum(-1)
    )
    max_width = int((new_len.max() + 1).item()) if new_len.numel() else 1
    return Samples(out[..., :max_width].contiguous(), new_len, d, log_q)
