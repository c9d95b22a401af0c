"""Batched beam search from any decoder state (all examples and beams in one tensor)."""

from __future__ import annotations

import torch

from searnn.data.vocab import EOS_ID, PAD_ID
from searnn.decoding.greedy import blocked_bias, start_tokens
from searnn.errors import unknown_name
from searnn.models.seq2seq import Seq2Seq
from searnn.models.state import DecoderState, Encoded

LEN_NORMS = ("gnmt", "length")


def length_penalty(length: torch.Tensor, alpha: float, mode: str = "gnmt") -> torch.Tensor:
    """Divisor of a hypothesis' summed log-probability.

    ``gnmt``: ``((5 + len) / 6) ** alpha`` (Wu et al. 2016); ``length``: ``max(len, 1) ** alpha``
    (alpha = 1 is the plain per-token average). alpha = 0 gives 1 (raw sum of log-probabilities).
    ``len`` counts output tokens, EOS excluded.
    """
    length = length.float()
    if mode == "gnmt":
        return ((5.0 + length) / 6.0) ** alpha
    if mode == "length":
        return length.clamp(min=1.0) ** alpha
    raise unknown_name("length normalisation", mode, LEN_NORMS)


@torch.no_grad()
def beam_search(
    model: Seq2Seq,
    enc: Encoded,
    state: DecoderState,
    beam_size: int,
    max_len: torch.Tensor,
    fixed_length: bool,
    len_norm: float = 0.0,
    len_norm_mode: str = "gnmt",
    first_tokens: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Best hypothesis per root row of ``state`` under beam search.

    state: R root rows (usually ``model.init_state(enc)``); max_len: ``(R,)`` long; first_tokens:
    ``(R,)`` long token fed at the first step (default BOS). Returns tokens ``(R, L)`` long (PAD after
    each length, L = max(max_len), EOS excluded) and lengths ``(R,)``.

    At every step the ``beam_size`` best continuations of each root's live hypotheses are kept (top-k
    over ``beam_size * V`` candidates, EOS included). A candidate ending in EOS leaves the beam: it is
    scored ``sum log p / length_penalty(len)`` and kept if it beats the root's best finished
    hypothesis; its slot is dead for this step. Hypotheses reaching ``max_len`` tokens finish without
    EOS (no EOS probability). A root stops when its best finished score is at least the best live
    (normalised) score, when no live hypothesis is left, or at ``max_len``; stopped roots leave the
    batch (their rows are dropped from the state). With ``alpha = 0`` the stopping rule is exact
    (extending a hypothesis never raises its score); with ``alpha > 0`` it is the usual heuristic.
    With ``beam_size = 1`` this is exactly greedy decoding. PAD and BOS are never emitted; EOS is
    blocked when ``fixed_length`` (every hypothesis then has exactly ``max_len`` tokens).
    The model should be in eval mode (the caller's responsibility).
    """
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    k = beam_size
    r = len(state)
    device = state.batch_idx.device
    max_len = max_len.to(device).long()
    width = int(max_len.max()) if r else 0
    vocab = model.tgt_vocab_size
    bias = blocked_bias(vocab, fixed_length, device)
    neg_inf = float("-inf")

    best_tokens = torch.full((r, width), PAD_ID, dtype=torch.long, device=device)
    best_len = torch.zeros(r, dtype=torch.long, device=device)
    best_score = torch.full((r,), neg_inf, device=device)
    best_score[max_len <= 0] = 0.0

    roots = (max_len > 0).nonzero().squeeze(1)  # (A,) original root of each active root
    state = state.index(roots.repeat_interleave(k))  # rows a*k + j
    inp = start_tokens(state, None if first_tokens is None else first_tokens.to(device)[roots.repeat_interleave(k)])
    scores = torch.full((roots.numel(), k), neg_inf, device=device)
    scores[:, 0] = 0.0  # one live hypothesis per root at the start
    seqs = torch.zeros((roots.numel(), k, 0), dtype=torch.long, device=device)

    def offer(cand_score: torch.Tensor, cand_seq: torch.Tensor, length: int) -> None:
        """Keep, per active root, the best of ``cand_score (A, C)`` (hypotheses ``cand_seq (A, C, t)``
        of ``length`` tokens) if it beats the root's best finished hypothesis."""
        norm = cand_score / length_penalty(torch.tensor(length, device=device), len_norm, len_norm_mode)
        top, arg = norm.max(dim=1)  # (A,)
        better = top > best_score[roots]
        if bool(better.any()):
            win = roots[better]
            best_score[win] = top[better]
            seq = cand_seq[better].gather(1, arg[better].view(-1, 1, 1).expand(-1, 1, cand_seq.shape[2]))
            best_tokens[win] = PAD_ID
            best_tokens[win, :length] = seq[:, 0, :length]
            best_len[win] = length

    for t in range(width):
        if roots.numel() == 0:
            break
        a = roots.numel()
        logits, state = model.step(enc, state, inp)
        logp = torch.log_softmax(logits + bias, dim=-1).view(a, k, vocab)
        cand = (scores.unsqueeze(2) + logp).view(a, k * vocab)
        top_score, top_idx = cand.topk(k, dim=1)  # (A, K)
        parent = top_idx // vocab
        token = top_idx % vocab
        parent_seqs = seqs.gather(1, parent.unsqueeze(2).expand(-1, -1, seqs.shape[2]))  # (A, K, t)
        finite = torch.isfinite(top_score)
        ended = (token == EOS_ID) & finite
        if bool(ended.any()):
            offer(top_score.masked_fill(~ended, neg_inf), parent_seqs, t)
        scores = top_score.masked_fill(ended, neg_inf)
        seqs = torch.cat([parent_seqs, token.unsqueeze(2)], dim=2)  # (A, K, t+1)
        reached = max_len[roots] <= t + 1
        if bool(reached.any()):
            offer(scores.masked_fill(~reached.unsqueeze(1), neg_inf), seqs, t + 1)
        live_best = scores.max(dim=1).values / length_penalty(
            torch.tensor(t + 1, device=device), len_norm, len_norm_mode
        )
        done = reached | ~torch.isfinite(live_best) | (best_score[roots] >= live_best)
        rows = (parent + torch.arange(a, device=device).unsqueeze(1) * k).view(-1)  # (A*K,)
        if bool(done.any()):
            keep = (~done).nonzero().squeeze(1)
            roots, scores, seqs, token = roots[keep], scores[keep], seqs[keep], token[keep]
            rows = rows.view(a, k)[keep].view(-1)
        state = state.index(rows)
        inp = token.reshape(-1)
    return best_tokens, best_len
