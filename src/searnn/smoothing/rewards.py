"""Sequence rewards ``r(y, {y*})`` for sequence-level smoothing (Elbayad et al. 2018, eq. 8, 11).

Every reward scores a batch of hypotheses against a *set* of references per row, batched on the
inputs' device (no Python loop over rows), without autograd; higher is better::

    reward(hyp (N, T) long, hyp_len (N,), refs (N, R, T') long, ref_len (N, R)) -> (N,) float

Sequences are target token ids without BOS/EOS; positions at or beyond a length are ignored.
``ref_len[i, r] < 0`` marks an absent reference (rows may have different numbers of references).

* ``bleu``: smoothed sentence BLEU-4 in [0, 1], exactly sacrebleu's ``sentence_bleu`` on the token ids
  (``smooth_method="exp"``, i.e. NIST/mteval-v13a smoothing, effective order, clipping by the maximum
  count over references, closest reference length with ties to the shorter). It is computed on
  **token** n-grams, never on the characters of detokenised strings (docs/METHODS.md §7.2).
* ``cider``: CIDEr-D (Vedantam et al., 2015) with document frequencies from the training references
  (:class:`CiderD`), in [0, 10] for a single reference.
* ``hamming``: minus the number of mismatching positions (positions past the shorter sequence count as
  mismatches), maximised over references; in tokens, the scale of the Hamming proposal's ``-d``.
* ``edit``: minus the Levenshtein distance in tokens, maximised over references.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from searnn.smoothing import ngrams

RewardFn = Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]

REWARD_NAMES = ("bleu", "cider", "edit", "hamming")


def pad_sequences(seqs: Sequence[Sequence[int]], device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
    """``list of token lists -> (tokens (N, T) long, lengths (N,) long)``, padded with 0."""
    width = max((len(s) for s in seqs), default=0)
    out = torch.zeros(len(seqs), max(width, 1), dtype=torch.long)
    for i, s in enumerate(seqs):
        if len(s):
            out[i, : len(s)] = torch.as_tensor(list(s), dtype=torch.long)
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    return out.to(device) if device is not None else out, lengths.to(out.device if device is None else device)


def pad_reference_sets(
    ref_sets: Sequence[Sequence[Sequence[int]]], device: torch.device | str | None = None
) -> tuple[Tensor, Tensor]:
    """``list (rows) of lists (references) of token lists -> (refs (N, R, T'), ref_len (N, R))``.

    Absent references (rows with fewer than R) have length -1.
    """
    n = len(ref_sets)
    r = max((len(s) for s in ref_sets), default=1) or 1
    width = max((len(ref) for s in ref_sets for ref in s), default=1) or 1
    refs = torch.zeros(n, r, width, dtype=torch.long)
    ref_len = torch.full((n, r), -1, dtype=torch.long)
    for i, s in enumerate(ref_sets):
        for j, ref in enumerate(s):
            ref_len[i, j] = len(ref)
            if len(ref):
                refs[i, j, : len(ref)] = torch.as_tensor(list(ref), dtype=torch.long)
    if device is not None:
        refs, ref_len = refs.to(device), ref_len.to(device)
    return refs, ref_len


# --------------------------------------------------------------------------------------------- BLEU


def sentence_bleu(
    hyp: Tensor,
    hyp_len: Tensor,
    refs: Tensor,
    ref_len: Tensor,
    vocab_size: int,
    max_order: int = 4,
    effective_order: bool = True,
) -> Tensor:
    """Smoothed sentence BLEU (sacrebleu ``smooth_method="exp"``) of each row, in [0, 1].

    hyp ``(N, T)``, hyp_len ``(N,)``, refs ``(N, R, T')``, ref_len ``(N, R)`` (-1 = absent). ``(N,)`` float.
    Precision of order n: ``m_n / h_n`` (clipped matches over hypothesis n-grams); an order with
    ``m_n = 0`` gets ``1 / (2^k h_n)`` where k counts the zero-match orders so far; with
    ``effective_order`` the geometric mean runs over the orders the hypothesis has (``h_n > 0``).
    ``BP = exp(1 - r / c)`` for ``c < r`` (0 for c = 0), r the closest reference length.
    """
    present = ref_len >= 0  # (N, R)
    correct, total = [], []
    for n in range(1, max_order + 1):
        hc = ngrams.ngram_codes(hyp, n, vocab_size, max_order)  # (N, P)
        hv = ngrams.valid_mask(hyp_len, n, hc.shape[-1])
        rc = ngrams.ngram_codes(refs, n, vocab_size, max_order)  # (N, R, Q)
        rv = ngrams.valid_mask(ref_len, n, rc.shape[-1]) & present[..., None]
        if hc.shape[-1] == 0 or rc.shape[-1] == 0:
            correct.append(torch.zeros_like(hyp_len))
        else:
            max_ref = ngrams.counts_in_refs(hc, rc, rv).amax(1)  # (N, P) clip: max count over refs
            rank = ngrams.occurrence_rank(hc, hv)
            correct.append((hv & (rank < max_ref)).sum(1))
        total.append((hyp_len - n + 1).clamp(min=0))
    m = torch.stack(correct, 1).float()  # (N, K)
    h = torch.stack(total, 1).float()
    # closest reference length, ties to the shorter one
    big = torch.iinfo(torch.long).max // 4
    key = (ref_len - hyp_len[:, None]).abs() * (1 << 24) + ref_len
    key = torch.where(present, key, torch.full_like(key, big))
    r = ref_len.gather(1, key.argmin(1, keepdim=True)).squeeze(1).clamp(min=0).float()
    c = hyp_len.float()
    bp = torch.where(c < r, torch.exp(1 - r / c.clamp(min=1)), torch.ones_like(c))
    bp = torch.where(c > 0, bp, torch.zeros_like(bp))
    included = h > 0
    halvings = torch.cumsum((included & (m == 0)).float(), 1)
    prec = torch.where(m > 0, m / h.clamp(min=1), 1.0 / (torch.pow(2.0, halvings) * h.clamp(min=1)))
    log_prec = torch.where(included, torch.log(prec), torch.zeros_like(prec))
    if effective_order:
        order = included.sum(1)
    else:
        order = torch.full_like(hyp_len, max_order)
        log_prec = torch.where(included, log_prec, torch.full_like(log_prec, -1e10))
    score = bp * torch.exp(log_prec.sum(1) / order.clamp(min=1).float())
    ok = (m.sum(1) > 0) & (order > 0)
    return torch.where(ok, score, torch.zeros_like(score))


# --------------------------------------------------------------------------------------------- CIDEr-D


class CiderD:
    """CIDEr-D (Vedantam, Zitnick, Parikh, CVPR 2015) with fixed document frequencies.

    For n = 1..4 a sentence is a tf-idf vector ``g_n(s)[w] = count_s(w) * log(D / max(1, df(w)))``
    over its n-grams w, with ``D`` the number of documents (training examples; a document is the set of
    references of one example) and ``df(w)`` the number of documents whose references contain w. Then

        CIDEr-D_n(c, S) = 1/|S| sum_s exp(-(l_c - l_s)^2 / (2 sigma^2))
                          * <min(g_n(c), g_n(s)), g_n(s)> / (|g_n(c)| |g_n(s)|)
        CIDEr-D(c, S) = 10 * 1/4 sum_n CIDEr-D_n(c, S)

    with the candidate's counts clipped by the reference's (``min``), sigma = 6 and lengths in tokens.
    This is the coco-caption / pycocoevalcap ``CiderScorer`` formula, except that pycocoevalcap takes a
    sentence's length as its number of bigrams, which differs only when a sentence is empty.

    The table stores, per order, the sorted n-gram codes seen in the documents and their frequencies:
    memory O(number of distinct n-grams).
    """

    def __init__(
        self,
        documents: Sequence[Sequence[Sequence[int]]],
        vocab_size: int,
        max_order: int = 4,
        sigma: float = 6.0,
        chunk: int = 8192,
    ):
        self.vocab_size = vocab_size
        self.max_order = max_order
        self.sigma = sigma
        self.num_documents = len(documents)
        self.log_num_documents = math.log(max(len(documents), 1))
        codes: list[list[Tensor]] = [[] for _ in range(max_order)]
        for start in range(0, len(documents), chunk):
            refs, ref_len = pad_reference_sets(documents[start : start + chunk])
            for n in range(1, max_order + 1):
                codes[n - 1].append(self._document_ngrams(refs, ref_len, n))
        self.df_codes: list[Tensor] = []
        self.df_counts: list[Tensor] = []
        for n in range(max_order):
            allc = torch.cat(codes[n]) if codes[n] else torch.zeros(0, dtype=torch.long)
            uniq, counts = torch.unique(allc, return_counts=True)  # sorted
            self.df_codes.append(uniq)
            self.df_counts.append(counts.float())

    def _document_ngrams(self, refs: Tensor, ref_len: Tensor, n: int) -> Tensor:
        """Distinct n-gram codes of each document, concatenated. refs ``(D, R, T')``."""
        rc = ngrams.ngram_codes(refs, n, self.vocab_size, self.max_order)  # (D, R, Q)
        rv = ngrams.valid_mask(ref_len, n, rc.shape[-1]) & (ref_len >= 0)[..., None]
        d = rc.shape[0]
        flat = rc.reshape(d, -1)
        valid = rv.reshape(d, -1)
        sentinel = torch.iinfo(torch.long).max
        flat = torch.where(valid, flat, torch.full_like(flat, sentinel)).sort(1).values
        first = torch.ones_like(flat, dtype=torch.bool)
        first[:, 1:] = flat[:, 1:] != flat[:, :-1]
        return flat[first & (flat != sentinel)]

    def to(self, device: torch.device | str) -> CiderD:
        """Move the document-frequency tables to ``device`` (in place); returns self."""
        self.df_codes = [c.to(device) for c in self.df_codes]
        self.df_counts = [c.to(device) for c in self.df_counts]
        return self

    def num_bytes(self) -> int:
        return sum(c.numel() * c.element_size() for c in self.df_codes + self.df_counts)

    def _idf(self, codes: Tensor, n: int) -> Tensor:
        df = ngrams.lookup(self.df_codes[n - 1], self.df_counts[n - 1], codes, default=0.0)
        return self.log_num_documents - torch.log(df.clamp(min=1.0))

    def __call__(self, hyp: Tensor, hyp_len: Tensor, refs: Tensor, ref_len: Tensor) -> Tensor:
        """CIDEr-D of each row: hyp ``(N, T)``, hyp_len ``(N,)``, refs ``(N, R, T')``, ref_len ``(N, R)``
        (-1 = absent). Returns ``(N,)`` float."""
        if self.df_codes[0].device != hyp.device:
            self.to(hyp.device)
        present = ref_len >= 0  # (N, R)
        total = torch.zeros(ref_len.shape, dtype=torch.float, device=hyp.device)  # (N, R)
        for n in range(1, self.max_order + 1):
            hc = ngrams.ngram_codes(hyp, n, self.vocab_size, self.max_order)  # (N, P)
            rc = ngrams.ngram_codes(refs, n, self.vocab_size, self.max_order)  # (N, R, Q)
            if hc.shape[-1] == 0 or rc.shape[-1] == 0:
                continue
            hv = ngrams.valid_mask(hyp_len, n, hc.shape[-1])
            rv = ngrams.valid_mask(ref_len, n, rc.shape[-1]) & present[..., None]
            idf_h2 = self._idf(hc, n).pow(2) * hv  # (N, P)
            idf_r2 = self._idf(rc, n).pow(2) * rv  # (N, R, Q)
            norm_h = (ngrams.self_counts(hc, hv) * idf_h2).sum(-1).sqrt()  # (N,)
            norm_r = (ngrams.self_counts(rc, rv) * idf_r2).sum(-1).sqrt()  # (N, R)
            c_r = ngrams.counts_in_refs(hc, rc, rv)  # (N, R, P)
            rank = ngrams.occurrence_rank(hc, hv)  # (N, P)
            # sum over distinct n-grams of min(c_h, c_r) * c_r * idf^2, as a sum over windows
            dot = ((rank[:, None, :] < c_r) * c_r * idf_h2[:, None, :]).sum(-1)  # (N, R)
            denom = norm_h[:, None] * norm_r
            total = total + torch.where(denom > 0, dot / denom.clamp(min=1e-30), torch.zeros_like(dot))
        delta = hyp_len[:, None].float() - ref_len.clamp(min=0).float()
        penalty = torch.exp(-delta.pow(2) / (2 * self.sigma**2))
        per_ref = total / self.max_order * penalty * present
        return 10.0 * per_ref.sum(1) / present.sum(1).clamp(min=1)


# --------------------------------------------------------------------------------------------- distances


def hamming_reward(hyp: Tensor, hyp_len: Tensor, refs: Tensor, ref_len: Tensor) -> Tensor:
    """Minus the Hamming distance in tokens (positions past the shorter sequence are mismatches),
    best over the references. ``(N,)`` float."""
    width = max(hyp.shape[1], refs.shape[2])
    h = torch.nn.functional.pad(hyp, (0, width - hyp.shape[1]), value=-1)
    r = torch.nn.functional.pad(refs, (0, width - refs.shape[2]), value=-2)
    pos = torch.arange(width, device=hyp.device)
    h_in = pos < hyp_len[:, None]  # (N, W)
    r_in = pos < ref_len[..., None]  # (N, R, W)
    mismatch = (h_in[:, None, :] | r_in) & ~(h_in[:, None, :] & r_in & (h[:, None, :] == r))
    dist = mismatch.sum(-1).float()  # (N, R)
    dist = torch.where(ref_len >= 0, dist, torch.full_like(dist, float("inf")))
    return -dist.amin(1)


def levenshtein(hyp: Tensor, hyp_len: Tensor, ref: Tensor, ref_len: Tensor) -> Tensor:
    """Token Levenshtein distance of each row. hyp ``(N, T)``, ref ``(N, T')`` -> ``(N,)`` float.

    Row-by-row dynamic programme over hypothesis positions (a loop over T, not over N); within a row
    the insertion chain is a prefix minimum: ``D[i, j] = j + cummin_k<=j (E[k] - k)`` with ``E`` the
    substitution/deletion candidates.
    """
    n, t_ref = ref.shape
    j = torch.arange(t_ref + 1, device=hyp.device, dtype=torch.float)
    row = j.expand(n, -1).clone()  # D[0, j] = j
    out = torch.where(hyp_len == 0, ref_len.float(), torch.zeros(n, device=hyp.device))
    for i in range(hyp.shape[1]):
        sub = row[:, :-1] + (hyp[:, i : i + 1] != ref).float()  # (N, T')
        cand = torch.cat([row[:, :1] + 1, torch.minimum(sub, row[:, 1:] + 1)], 1)  # (N, T'+1)
        row = torch.cummin(cand - j, 1).values + j
        done = hyp_len == i + 1
        out = torch.where(done, row.gather(1, ref_len.clamp(min=0)[:, None]).squeeze(1), out)
    return out


def edit_reward(hyp: Tensor, hyp_len: Tensor, refs: Tensor, ref_len: Tensor) -> Tensor:
    """Minus the Levenshtein distance in tokens, best over the references. ``(N,)`` float."""
    n, r, t_ref = refs.shape
    dist = levenshtein(
        hyp.repeat_interleave(r, 0), hyp_len.repeat_interleave(r, 0), refs.reshape(n * r, t_ref),
        ref_len.reshape(-1).clamp(min=0),
    ).view(n, r)
    dist = torch.where(ref_len >= 0, dist, torch.full_like(dist, float("inf")))
    return -dist.amin(1)


def make_reward(
    name: str, vocab_size: int, documents: Sequence[Sequence[Sequence[int]]] | None = None
) -> RewardFn:
    """Reward function by name (``bleu | cider | edit | hamming``).

    ``documents``: the training reference sets (one list of references per training example), needed by
    ``cider`` for its document frequencies.
    """
    if name == "bleu":
        return lambda h, hl, r, rl: sentence_bleu(h, hl, r, rl, vocab_size)
    if name == "cider":
        if documents is None:
            raise ValueError("the cider reward needs the training references (documents)")
        return CiderD(documents, vocab_size)
    if name == "hamming":
        return hamming_reward
    if name == "edit":
        return edit_reward
    from searnn.errors import unknown_name

    raise unknown_name("reward", name, REWARD_NAMES)
