"""Batched greedy (argmax) decoding from any decoder state."""

from __future__ import annotations

import inspect

import torch

from searnn import protocol
from searnn.data.vocab import BOS_ID, EOS_ID, PAD_ID
from searnn.models.seq2seq import Seq2Seq
from searnn.models.state import DecoderState, Encoded
from searnn.profiling import region


def blocked_bias(vocab_size: int, fixed_length: bool, device: torch.device) -> torch.Tensor:
    """``(V,)`` float: ``-inf`` on tokens a decoder may never emit (PAD, BOS; EOS for fixed-length
    tasks), 0 elsewhere. Added to logits before argmax / top-k."""
    bias = torch.zeros(vocab_size, device=device)
    bias[PAD_ID] = float("-inf")
    bias[BOS_ID] = float("-inf")
    if fixed_length:
        bias[EOS_ID] = float("-inf")
    return bias


def start_tokens(rows: DecoderState | torch.Tensor, first_tokens: torch.Tensor | None) -> torch.Tensor:
    """``(N,)`` long tokens fed at the first step: ``first_tokens`` or BOS, for the N rows of a state (or
    of an ``(N,)`` long index of rows)."""
    like = rows if isinstance(rows, torch.Tensor) else rows.batch_idx  # any protocol state
    if first_tokens is not None:
        return first_tokens.to(like.device).long()
    return torch.full_like(like, BOS_ID)


def token_gates_for(model: Seq2Seq, rows: int, steps: int) -> torch.Tensor | None:
    """The model's token-gate table (:meth:`Seq2Seq.token_gates`) when decoding ``rows`` rows for up to
    ``steps`` steps looks up more token rows than the table has (V), so that building it pays; else None.
    Only in eval mode, and only for models that offer ``step_cached``. A caller that decodes in several
    :func:`greedy` calls (SeaRNN roll-outs, by chunks) builds it once and passes it to each."""
    if model.training or not hasattr(model, "step_cached") or rows * max(steps - 1, 0) < model.tgt_vocab_size:
        return None
    return model.token_gates()


def _projects(model: Seq2Seq) -> bool:
    """Whether the model's fast steps take a ``project`` argument (models that customise them may not)."""
    fns = [getattr(model, name, None) for name in ("step_cached", "step_shared")]
    return all(fn is not None and "project" in inspect.signature(fn).parameters for fn in fns)


class Scorer:
    """Output scores of greedy decoding: the blocked bias folded into the output layer's bias, optionally
    restricted to a shortlist of tokens (SeaRNN's shortlisted roll-outs), and the shortlist's agreement with
    the full vocabulary measured on a sample of rows.

    vocab: ``(K,)`` long sorted token ids, or None for the whole vocabulary. A shortlist that holds every
    token the decoder may emit is the whole vocabulary (same computation, same results). ``stats``: a dict
    that receives ``shortlist_checked`` / ``shortlist_agree`` counters (rows compared, rows whose
    shortlist argmax equals the full-vocabulary argmax), about ``check_rows`` rows per step.

    :meth:`best` fuses the output projection with the argmax, by blocks of ``block`` output rows: each
    block's scores are reduced while they are still in cache, and the ``(N, V)`` score matrix is never
    written (20-25% faster than projecting then reducing for V = 5,917 on one CPU thread). Ties go to the
    lowest index, as ``argmax``.
    """

    def __init__(
        self,
        model: Seq2Seq,
        fixed_length: bool,
        device: torch.device,
        vocab: torch.Tensor | None = None,
        stats: dict[str, float] | None = None,
        check_rows: int = 16,
        block: int = 1024,
    ):
        self.bias = blocked_bias(model.tgt_vocab_size, fixed_length, device)  # (V,)
        if vocab is not None:
            vocab = vocab.to(device).long()
            vocab = vocab[torch.isfinite(self.bias[vocab])]
            if int(vocab.numel()) >= int(torch.isfinite(self.bias).sum()):
                vocab = None  # every emittable token: the full vocabulary
        self.vocab = vocab
        self.stats = stats
        self.check_rows = check_rows
        self.block = block
        self._work: torch.Tensor | None = None  # score blocks of _argmax
        out = getattr(model, "out", None)
        self.fused = isinstance(out, torch.nn.Linear) and out.bias is not None
        if self.fused:
            assert isinstance(out, torch.nn.Linear) and out.bias is not None
            self.weight, self.full_bias = out.weight, out.bias + self.bias  # b + 0 = b exactly
            self.sub_weight, self.sub_bias = self.weight, self.full_bias
            if vocab is not None:
                self.sub_weight = out.weight.index_select(0, vocab).contiguous()  # (K, H)
                self.sub_bias = self.full_bias.index_select(0, vocab)

    def best(self, o: torch.Tensor) -> torch.Tensor:
        """``(N,)`` long: the position (in the shortlist, or the token id without one) of the highest score of
        each attentional output ``o (N, H)``, blocked tokens excluded; for the fast steps' ``project``."""
        pos = self._argmax(o, self.sub_weight, self.sub_bias)
        if self.vocab is not None and self.stats is not None and o.shape[0] > 0:
            stride = max(o.shape[0] // self.check_rows, 1)
            full = self._argmax(o[::stride], self.weight, self.full_bias)
            self._count(self.vocab[pos[::stride]], full)
        return pos

    @torch.no_grad()
    def _argmax(self, o: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """``argmax_k (o @ weight.T + bias)`` per row, ``(N,)`` long, by blocks of rows of ``weight``."""
        best_val: torch.Tensor | None = None
        best_pos = o.new_zeros(o.shape[0], dtype=torch.long)
        n = o.shape[0]
        if self._work is None or self._work.numel() < n * self.block or self._work.dtype != o.dtype:
            self._work = torch.empty(n * self.block, dtype=o.dtype, device=o.device)
        for lo in range(0, weight.shape[0], self.block):
            w = min(self.block, weight.shape[0] - lo)
            with region("decoder.projection"):
                # into a workspace kept between steps (fresh score blocks cost page faults on CPU)
                scores = torch.addmm(
                    bias[lo : lo + w], o, weight[lo : lo + w].t(), out=self._work[: n * w].view(n, w)
                )
            with region("decoder.argmax"):
                val, pos = scores.max(dim=-1)
                if best_val is None:
                    best_val, best_pos = val, pos
                else:
                    better = val > best_val  # strict: ties keep the earlier (lower) index
                    best_val = torch.where(better, val, best_val)
                    best_pos = torch.where(better, pos + lo, best_pos)
        return best_pos

    def select(self, logits: torch.Tensor) -> torch.Tensor:
        """Scores from full logits ``(N, V)`` (the plain ``step`` path; may modify ``logits``): blocked
        tokens at ``-inf``, restricted to the shortlist."""
        logits = logits.add_(self.bias)
        if self.vocab is None:
            return logits
        scores = logits.index_select(1, self.vocab)
        if self.stats is not None and logits.shape[0] > 0:
            self._count(self.vocab[scores.argmax(dim=-1)], logits.argmax(dim=-1))
        return scores

    def tokens(self, best: torch.Tensor) -> torch.Tensor:
        """Token ids ``(N,)`` of argmax positions ``best (N,)`` of the scores."""
        return best if self.vocab is None else self.vocab.index_select(0, best)

    def _count(self, short: torch.Tensor, full: torch.Tensor) -> None:
        assert self.stats is not None
        self.stats["shortlist_checked"] = self.stats.get("shortlist_checked", 0.0) + float(short.numel())
        self.stats["shortlist_agree"] = self.stats.get("shortlist_agree", 0.0) + float((short == full).sum())


@torch.no_grad()
def greedy(
    model: Seq2Seq,
    enc: Encoded,
    state: DecoderState,
    max_len: torch.Tensor,
    fixed_length: bool,
    first_tokens: torch.Tensor | None = None,
    state_rows: torch.Tensor | None = None,
    gates: torch.Tensor | None = None,
    scorer: Scorer | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Argmax decoding of N rows from ``state``.

    state: N rows over ``enc``; max_len: ``(N,)`` long, most tokens per row; first_tokens: ``(N,)`` long
    token fed at the first step (default BOS; a roll-out passes the candidate token it forces, from the
    state *after* the roll-in prefix). Returns tokens ``(N, L)`` long (PAD after each row's end,
    L = max(max_len)) and lengths ``(N,)``; the fed first token and EOS are not part of the output.

    PAD and BOS are never emitted. With ``fixed_length`` EOS is blocked and every row emits exactly
    ``max_len`` tokens; otherwise a row stops at its first EOS or at ``max_len`` tokens. Rows that stop
    leave the active set (the state is re-indexed), so finished rows cost no further compute. When the
    rows that stop are the last ones (rows sorted by ``max_len`` descending, no EOS: SeaRNN roll-outs on
    fixed-length tasks), the active set shrinks by slicing (:meth:`DecoderState.head`, no copy).
    The model should be in eval mode (the caller's responsibility: dropout would otherwise be active).

    state_rows: ``(N,)`` long, optional: ``state`` then holds U shared rows and row n starts from state
    row ``state_rows[n]`` (SeaRNN roll-outs: every candidate token of a cell starts from the cell's
    state). The first step then runs through ``model.step_shared``, which computes the shared parts
    once per state; the result equals decoding from ``state.index(state_rows)``.

    In eval mode, when the rows times the steps exceed the vocabulary, the first decoder layer's input
    projection of every token is computed once (``model.token_gates``) and each later step looks its
    tokens up (``model.step_cached``): one matmul per step instead of two in that layer. ``gates``: that
    table, when the caller already has it (:func:`token_gates_for`).

    scorer: how the output scores are computed (:class:`Scorer`; default the whole vocabulary). In eval
    mode the fast steps fold the blocked tokens' ``-inf`` into the output bias and fuse the projection
    with the argmax (:meth:`Scorer.best`); a shortlist scorer projects onto its K tokens only.
    """
    n = len(state) if state_rows is None else int(state_rows.shape[0])
    device = state.batch_idx.device
    max_len = max_len.to(device).long()
    width = int(max_len.max()) if n else 0
    tokens = torch.full((n, width), PAD_ID, dtype=torch.long, device=device)
    lengths = torch.zeros(n, dtype=torch.long, device=device)
    if scorer is None:
        scorer = Scorer(model, fixed_length, device)
    fast = not model.training and scorer.fused and _projects(model)
    if state_rows is not None:
        state_rows = state_rows.to(device).long()
    inp = start_tokens(state if state_rows is None else state_rows, first_tokens)
    active = torch.arange(n, device=device)
    prefix = True  # active is arange(len(active))
    live = max_len > 0
    if not bool(live.all()):
        prefix = False
        keep_rows = live.nonzero().squeeze(1)
        active, inp = active[keep_rows], inp[keep_rows]
        if state_rows is not None:
            state_rows = state_rows[keep_rows]
        else:
            state = state.index(keep_rows)
    if gates is None:
        gates = token_gates_for(model, n, width)
    for t in range(width):
        if active.numel() == 0:
            break
        projected = fast
        if state_rows is not None:
            shared = getattr(model, "step_shared", None)
            if shared is not None and fast:
                scores, state = shared(enc, state, inp, state_rows, project=scorer.best)
            elif shared is not None:
                scores, state = shared(enc, state, inp, state_rows)
                projected = False
            else:
                scores, state = model.step(enc, state.index(state_rows), inp)
                projected = False
            state_rows = None
        elif gates is not None and fast:
            scores, state = model.step_cached(enc, state, inp, gates, project=scorer.best)
        elif gates is not None:
            scores, state = model.step_cached(enc, state, inp, gates)
            projected = False
        else:
            scores, state = model.step(enc, state, inp)
            projected = False
        if projected:  # the fast steps returned the argmax positions
            pred = scorer.tokens(scores)
        else:
            with region("decoder.argmax"):
                pred = scorer.tokens(scorer.select(scores).argmax(dim=-1))  # (A,); logits not needed after

        ended = pred == EOS_ID
        m = int(active.numel())
        if prefix:  # active == arange(m): slices instead of scatters
            tokens[:m, t] = pred.masked_fill(ended, PAD_ID)
            lengths[:m] += (~ended).long()
            keep = ~ended & (max_len[:m] > t + 1)
        else:
            tokens[active, t] = pred.masked_fill(ended, PAD_ID)
            lengths[active] += (~ended).long()
            keep = ~ended & (max_len[active] > t + 1)
        kept = int(keep.sum())
        if kept < m:
            if bool(keep[:kept].all()):  # the first rows go on (rows sorted by length, no EOS): views
                active, state, pred = active[:kept], protocol.head(state, kept), pred[:kept]
            else:
                rows = keep.nonzero().squeeze(1)
                active, state, pred = active[rows], state.index(rows), pred[rows]
                prefix = False
        inp = pred
    return tokens, lengths
