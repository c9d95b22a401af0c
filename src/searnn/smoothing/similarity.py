"""Token similarities for token-level smoothing (Elbayad et al. 2018, sec. 3.3, eq. 13-14).

A similarity is stored **sparsely**: for every token v its ``k`` most similar tokens (cosine similarity
of word vectors, v itself always first with similarity 1) as ``indices (V, k)`` and ``values (V, k)``.
It is computed in row chunks, so neither storage nor any intermediate is ever a dense ``V x V`` matrix
(docs/METHODS.md §7.2: the authors' dense pickles reach gigabytes).

Vector sources:

* ``glove``: a GloVe text file (``word v1 ... vd``, optionally gzipped), the shipped default being
  ``data/glove/glove.6B.50d.subset.txt.gz``. A target token is looked up as is, lowercased, and with
  its Moses/HTML escapes undone (``&apos;s`` -> ``'s``).
* ``train``: vectors fit on the task's own training targets: symmetric co-occurrence counts within a
  window (sparse), positive PMI with context-distribution smoothing (exponent 0.75, Levy, Goldberg and
  Dagan 2015), then a rank-``dim`` truncated SVD (``torch.svd_lowrank`` on the sparse matrix), vectors
  ``U sqrt(S)``. All in torch, no dense ``V x V``.
* ``model``: the model's own output embeddings (rows of the output projection), recomputed periodically
  by the objective.

Tokens without a vector (unknown to GloVe, never co-occurring, the specials) have no neighbours but
themselves, and are never anyone's neighbour. PAD, BOS and UNK are never neighbours.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from searnn.data.io import read_lines
from searnn.data.vocab import BOS_ID, PAD_ID, UNK_ID, Vocab
from searnn.errors import ConfigError, DataError

EXCLUDED_TARGETS = (PAD_ID, BOS_ID, UNK_ID)
"""Token ids that never receive smoothing mass (EOS does: it is a trained target)."""


@dataclass
class SparseSimilarity:
    """Top-k similarity lists. indices: ``(V, k)`` long; values: ``(V, k)`` float, ``-inf`` on unused
    slots. Row v holds v itself (value 1) and its nearest tokens by decreasing similarity."""

    indices: Tensor
    values: Tensor

    @property
    def vocab_size(self) -> int:
        return int(self.indices.shape[0])

    @property
    def k(self) -> int:
        return int(self.indices.shape[1])

    def num_elements(self) -> int:
        """Number of stored scalars: ``2 V k`` (the test of "never a dense V x V")."""
        return self.indices.numel() + self.values.numel()

    def to(self, device: torch.device | str) -> SparseSimilarity:
        return SparseSimilarity(self.indices.to(device), self.values.to(device))


def topk_cosine(vectors: Tensor, k: int, has_vector: Tensor | None = None, chunk: int = 1024) -> SparseSimilarity:
    """Top-k cosine neighbours of every row of ``vectors (V, d)``, in chunks of ``chunk`` rows.

    ``has_vector (V,)`` bool marks the rows with a meaningful vector (default: non-zero rows). Columns
    ``EXCLUDED_TARGETS`` and rows without vector are never neighbours and have no neighbours but
    themselves; every row contains itself (first, similarity 1).
    Peak memory ``O(chunk V)``; storage ``O(V k)``.
    """
    v = vectors.shape[0]
    k = max(1, min(k, v))
    vec = vectors.detach().float()
    norms = vec.norm(dim=1)
    if has_vector is None:
        has_vector = norms > 0
    has_vector = has_vector & (norms > 0)
    unit = vec / norms.clamp(min=1e-12)[:, None]
    allowed = has_vector.clone()
    allowed[list(EXCLUDED_TARGETS)] = False
    indices = torch.empty(v, k, dtype=torch.long, device=vec.device)
    values = torch.empty(v, k, dtype=torch.float, device=vec.device)
    neg_inf = torch.tensor(float("-inf"), device=vec.device)
    for start in range(0, v, chunk):
        rows = torch.arange(start, min(start + chunk, v), device=vec.device)
        sims = unit[rows] @ unit.T  # (c, V)
        sims = torch.where(allowed[None, :] & allowed[rows][:, None], sims, neg_inf)
        sims[torch.arange(len(rows), device=vec.device), rows] = float("inf")  # self first
        val, idx = sims.topk(k, dim=1)
        values[rows] = torch.where(torch.isposinf(val), torch.ones_like(val), val)
        indices[rows] = idx
    return SparseSimilarity(indices, values)


# --------------------------------------------------------------------------------------------- vectors


def _lookup_forms(token: str) -> list[str]:
    forms = [token, token.lower()]
    unescaped = html.unescape(token)
    forms += [unescaped, unescaped.lower()]
    return list(dict.fromkeys(forms))


def load_word_vectors(path: str | Path, vocab: Vocab) -> tuple[Tensor, Tensor]:
    """Vectors of ``vocab``'s tokens from a GloVe-format text file (gzip if the name ends in .gz).

    Returns (vectors ``(V, d)`` float, zero rows for tokens not found; found ``(V,)`` bool). Only the
    lines of wanted words are parsed. Raises :class:`DataError` for a missing or malformed file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: word-vector file not found (option embeddings_path)")
    forms = {i: _lookup_forms(tok) for i, tok in enumerate(vocab.itos) if i >= 4}
    wanted = {f for fs in forms.values() for f in fs}
    found_vec: dict[str, list[float]] = {}
    dim = None
    for lineno, line in read_lines(path):  # BOM removed; bad UTF-8 or gzip data: DataError naming file and line
        word, _, rest = line.partition(" ")
        if word not in wanted:
            continue
        try:
            vals = [float(x) for x in rest.split()]
        except ValueError as exc:
            raise DataError(f"{path}:{lineno}: malformed vector line ({exc})") from None
        if dim is None:
            dim = len(vals)
        if len(vals) != dim or dim == 0:
            raise DataError(f"{path}:{lineno}: expected {dim} values, got {len(vals)}")
        found_vec[word] = vals
    if dim is None:
        raise DataError(f"{path}: no vector for any token of the target vocabulary")
    vectors = torch.zeros(len(vocab), dim)
    found = torch.zeros(len(vocab), dtype=torch.bool)
    for i, fs in forms.items():
        for f in fs:
            if f in found_vec:
                vectors[i] = torch.tensor(found_vec[f])
                found[i] = True
                break
    return vectors, found


def _pad(seqs: Sequence[Sequence[int]]) -> tuple[Tensor, Tensor]:
    width = max((len(s) for s in seqs), default=1) or 1
    x = torch.zeros(len(seqs), width, dtype=torch.long)
    for i, s in enumerate(seqs):
        if len(s):
            x[i, : len(s)] = torch.as_tensor(list(s), dtype=torch.long)
    return x, torch.tensor([len(s) for s in seqs], dtype=torch.long)


def ppmi_svd_vectors(
    sequences: Sequence[Sequence[int]],
    vocab_size: int,
    dim: int = 50,
    window: int = 4,
    context_power: float = 0.75,
    seed: int = 0,
) -> tuple[Tensor, Tensor]:
    """Word vectors from the training targets: sparse PPMI co-occurrence matrix, truncated SVD.

    Co-occurrences: token pairs at distance 1..``window`` in a sentence, both directions, specials
    excluded. ``PPMI(i, j) = max(0, log(c_ij N / (c_i P_ctx(j))))`` with ``P_ctx(j) ∝ c_j^power``.
    Vectors ``U_d sqrt(S_d)`` of ``torch.svd_lowrank`` (seeded, global RNG untouched).
    Returns (vectors ``(V, dim)``, found ``(V,)`` bool: the token co-occurs with something).
    """
    x, lengths = _pad(sequences)
    pos = torch.arange(x.shape[1])
    inside = pos[None, :] < lengths[:, None]
    codes = []
    for delta in range(1, window + 1):
        if delta >= x.shape[1]:
            break
        a, b = x[:, :-delta], x[:, delta:]
        ok = inside[:, delta:] & (a >= 4) & (b >= 4)
        codes.append(a[ok] * vocab_size + b[ok])
        codes.append(b[ok] * vocab_size + a[ok])
    if not codes or sum(c.numel() for c in codes) == 0:
        return torch.zeros(vocab_size, dim), torch.zeros(vocab_size, dtype=torch.bool)
    uniq, counts = torch.unique(torch.cat(codes), return_counts=True)
    row, col = uniq // vocab_size, uniq % vocab_size
    c = counts.double()
    total = c.sum()
    word = torch.zeros(vocab_size, dtype=torch.double).index_add_(0, row, c)
    ctx = word.pow(context_power)
    ctx = ctx / ctx.sum()
    pmi = torch.log(c * total) - torch.log(word[row]) - torch.log(ctx[col] * total)
    keep = pmi > 0
    found = torch.zeros(vocab_size, dtype=torch.bool)
    found[row[keep]] = True
    mat = torch.sparse_coo_tensor(
        torch.stack([row[keep], col[keep]]), pmi[keep].float(), (vocab_size, vocab_size), check_invariants=True
    ).coalesce()
    q = min(dim + 10, vocab_size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        u, s, _ = torch.svd_lowrank(mat, q=q, niter=4)
    d = min(dim, q)
    vectors = u[:, :d] * s[:d].clamp(min=0).sqrt()[None, :]
    vectors[~found] = 0
    return vectors, found


def output_embeddings(model: torch.nn.Module, vocab_size: int) -> Tensor:
    """The model's output embeddings ``(V, H)``, detached.

    Looks for ``model.out`` (the Seq2Seq output projection), then the last ``nn.Linear`` whose
    ``out_features == V``, then ``model.tgt_embedding`` (input embeddings).
    """
    out = getattr(model, "out", None)
    if isinstance(out, torch.nn.Linear) and out.out_features == vocab_size:
        return out.weight.detach()
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear) and m.out_features == vocab_size]
    if linears:
        return linears[-1].weight.detach()
    emb = getattr(model, "tgt_embedding", None)
    if isinstance(emb, torch.nn.Embedding) and emb.num_embeddings == vocab_size:
        return emb.weight.detach()
    raise ConfigError(
        "similarity: model needs a model with an output projection nn.Linear(H, V) or a tgt_embedding "
        f"of {vocab_size} rows"
    )


def token_frequencies(sequences: Sequence[Sequence[int]], vocab_size: int) -> Tensor:
    """Relative frequency of every token id in ``sequences``. ``(V,)`` float."""
    x, lengths = _pad(sequences)
    inside = torch.arange(x.shape[1])[None, :] < lengths[:, None]
    counts = torch.bincount(x[inside], minlength=vocab_size)[:vocab_size].float()
    return counts / counts.sum().clamp(min=1)


def target_distribution(
    sim: SparseSimilarity, tau: float, beta: float = 0.0, freq: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Smoothed token targets of eq. (13)-(14), one row per ground-truth token.

    ``r(v | y) ∝ exp((cos(v, y) - beta * min(f_v / f_y, f_y / f_v)) / tau)`` over y's k neighbours
    (a frequency of 0 gives a ratio of 0). Returns (probs ``(V, k)``, log_probs ``(V, k)``; unused
    slots have probability 0 and log-probability 0).
    """
    score = sim.values
    if beta > 0:
        if freq is None:
            raise ValueError("beta > 0 needs token frequencies")
        freq = freq.to(score.device)
        f_y = freq[:, None]
        f_v = freq[sim.indices]
        ratio = torch.minimum(f_v / f_y.clamp(min=1e-30), f_y / f_v.clamp(min=1e-30))
        ratio = torch.where((f_y > 0) & (f_v > 0), ratio, torch.zeros_like(ratio))
        score = score - beta * ratio
    logits = score / tau
    log_probs = torch.log_softmax(logits, dim=1)
    used = torch.isfinite(sim.values)
    log_probs = torch.where(used, log_probs, torch.zeros_like(log_probs))
    probs = torch.where(used, log_probs.exp(), torch.zeros_like(log_probs))
    return probs, log_probs
