"""Chunk F1 cost (IOB2 chunking, conlleval chunks) and the maximize-F1 oracle.

Chunks follow conlleval on IOB tags: a chunk starts at a ``B-X``, and also at an ``I-X`` whose previous
tag is ``O`` or of another type (so IOB1-style ``I-`` openings are tolerated); it goes on over the
following ``I-X`` of the same type. A hypothesis chunk is correct iff a reference chunk has the same
start, end and type. Special tokens (PAD/BOS/EOS/UNK) count as ``O``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from searnn.costs.base import Cost, length_mask, pad_to
from searnn.data.vocab import SPECIALS, Vocab
from searnn.errors import ConfigError


class ChunkMatch(NamedTuple):
    """Per-position chunk flags of a batch, all ``(N, W)`` with ``W = max(T, T')``.

    hyp_start / ref_start: a chunk starts here; correct: a hypothesis chunk starting here equals a
    reference chunk; hyp_type / ref_type: chunk type id at each position (0 outside chunks).
    """

    hyp_start: Tensor
    ref_start: Tensor
    correct: Tensor
    hyp_type: Tensor
    ref_type: Tensor

    def counts(self) -> tuple[Tensor, Tensor, Tensor]:
        """Sufficient statistics ``(correct, n_hyp, n_ref)``, each ``(N,)`` long."""
        return self.correct.sum(1), self.hyp_start.sum(1), self.ref_start.sum(1)


class TagTable:
    """Per-id IOB tables of a tag vocabulary, built once: ``type_id (V,)`` long (0 = no chunk),
    ``begin (V,)``/``inside (V,)`` bool, ``extend (V,)`` long (B-X -> I-X, or O when the vocabulary has no
    I-X; others unchanged; specials -> O), ``opening (V,)`` long (I-X -> B-X when the vocabulary has it,
    others unchanged), ``outside`` the id of O (-1 when absent).

    Tags must be ``O``, ``B-TYPE`` or ``I-TYPE``; anything else raises :class:`ConfigError`.
    """

    def __init__(self, vocab: Vocab):
        self.types: list[str] = [""]
        type_ids, begin, inside = [], [], []
        for i, tok in enumerate(vocab.itos):
            kind, typ = _parse_tag(tok, special=i < len(SPECIALS))
            if typ and typ not in self.types:
                self.types.append(typ)
            type_ids.append(self.types.index(typ) if typ else 0)
            begin.append(kind == "B")
            inside.append(kind == "I")
        outside_id = vocab.stoi.get("O")
        extend, opening = [], []
        for i, tok in enumerate(vocab.itos):
            if begin[i]:
                extend.append(vocab.stoi.get("I-" + tok[2:], i if outside_id is None else outside_id))
            elif i < len(SPECIALS) and outside_id is not None:
                extend.append(outside_id)
            else:
                extend.append(i)
            opening.append(vocab.stoi.get("B-" + tok[2:], i) if inside[i] else i)
        self.outside = -1 if outside_id is None else int(outside_id)
        self.type_id = torch.tensor(type_ids, dtype=torch.long)
        self.begin = torch.tensor(begin, dtype=torch.bool)
        self.inside = torch.tensor(inside, dtype=torch.bool)
        self.extend = torch.tensor(extend, dtype=torch.long)
        self.opening = torch.tensor(opening, dtype=torch.long)

    def to(self, device: torch.device) -> TagTable:
        """Move the tables to ``device`` (in place, cheap when already there); returns self."""
        if self.type_id.device != device:
            for name in ("type_id", "begin", "inside", "extend", "opening"):
                setattr(self, name, getattr(self, name).to(device))
        return self


def _parse_tag(tok: str, special: bool) -> tuple[str, str]:
    """``'B-NP' -> ('B', 'NP')``, ``'O' -> ('O', '')``; specials -> ``('O', '')``."""
    if special or tok == "O":
        return "O", ""
    if len(tok) > 2 and tok[:2] in ("B-", "I-"):
        return tok[0], tok[2:]
    raise ConfigError(f"the f1 cost needs IOB2 tags (O, B-TYPE, I-TYPE); got tag {tok!r} in the target vocabulary")


def chunk_starts(tags: Tensor, lengths: Tensor, table: TagTable) -> tuple[Tensor, Tensor, Tensor]:
    """conlleval chunk starts: ``tags (N, W), lengths (N,) -> (start, in_chunk, type)``, each ``(N, W)``."""
    valid = length_mask(lengths, tags.shape[1])
    ids = torch.where(valid, tags, torch.zeros_like(tags))  # garbage beyond lengths may be any id
    typ = table.type_id[ids]
    in_chunk = (table.begin[ids] | table.inside[ids]) & valid
    prev_in = torch.cat([torch.zeros_like(in_chunk[:, :1]), in_chunk[:, :-1]], dim=1)
    prev_typ = torch.cat([torch.zeros_like(typ[:, :1]), typ[:, :-1]], dim=1)
    start = in_chunk & (table.begin[ids] | ~prev_in | (prev_typ != typ))
    return start, in_chunk, typ


def _next_end(start: Tensor, in_chunk: Tensor) -> Tensor:
    """Position of the end of the chunk covering each position: ``(N, W) -> (N, W)`` long (W if none)."""
    width = start.shape[1]
    nxt_in = torch.cat([in_chunk[:, 1:], torch.zeros_like(in_chunk[:, :1])], dim=1)
    nxt_start = torch.cat([start[:, 1:], torch.zeros_like(start[:, :1])], dim=1)
    end = in_chunk & (~nxt_in | nxt_start)
    pos = torch.arange(width, device=start.device).expand_as(start)
    marked = torch.where(end, pos, torch.full_like(pos, width))
    return torch.cummin(marked.flip(1), dim=1).values.flip(1)


def chunk_match(hyp: Tensor, hyp_len: Tensor, ref: Tensor, ref_len: Tensor, table: TagTable) -> ChunkMatch:
    """Chunk flags of hypotheses vs references: ``(N, T), (N,), (N, T'), (N,) -> ChunkMatch``."""
    width = max(hyp.shape[1], ref.shape[1])
    table = table.to(hyp.device)
    h_start, h_in, h_typ = chunk_starts(pad_to(hyp, width), hyp_len, table)
    r_start, r_in, r_typ = chunk_starts(pad_to(ref, width), ref_len, table)
    same_end = _next_end(h_start, h_in) == _next_end(r_start, r_in)
    correct = h_start & r_start & (h_typ == r_typ) & same_end
    return ChunkMatch(h_start, r_start, correct, h_typ, r_typ)


def chunk_f1(correct: Tensor, n_hyp: Tensor, n_ref: Tensor) -> Tensor:
    """Chunk F1 ``2 c / (n_hyp + n_ref)`` (= 2PR/(P+R), 0 when P+R = 0), 1 when both have no chunk.
    ``(...)`` long counts -> ``(...)`` float."""
    total = n_hyp + n_ref
    return torch.where(total > 0, 2.0 * correct.float() / total.clamp(min=1).float(), torch.ones_like(total).float())


class ChunkF1Cost(Cost):
    """``f1``: 1 - sentence chunk F1 (docs/METHODS.md §4.4); a perfect empty-vs-empty pair costs 0.

    Oracle (``maximize-F1``, docs/METHODS.md §4.4), for a prefix q (|q| = p) and the reference y:

    1. fill: extend q's last tag (B-X -> I-X; I-X and O repeat) up to b, the first reference chunk
       boundary at or after p (position 0, an O, or the start of a reference chunk);
    2. copy ``y[b:]``, writing ``B-X`` at every reference chunk start (an ``I-X`` that opens a chunk, read
       as conlleval reads it, would otherwise continue a filled chunk of X);
    3. cut at ``max_len``: a copied chunk that the cut would split (it goes on in y beyond ``max_len``)
       is written as O instead (dropped when the vocabulary has no O);
    4. a prefix at least as long as y is returned unchanged.

    Optimality (exact for every prefix, reference and ``max_len``, given every ``I-X`` of the vocabulary
    has its ``B-X``): the hypothesis chunks that start inside q are fixed by q; the fill adds no chunk,
    and closes q's last chunk exactly where the reference chunk it may match ends; every reference chunk
    that starts at or after b and ends before ``max_len`` is matched; no other reference chunk can be
    matched by any completion (it starts inside q, or it ends beyond the longest allowed output); and no
    wrong chunk is added. A correct chunk never lowers F1 (``2(c+1)/(n+1) >= 2c/n`` as ``c <= n``), so
    no completion does better. Tested against brute force over every completion in tests/test_oracles.py.
    """

    name = "f1"

    def __init__(self, tgt_vocab: Vocab):
        super().__init__(tgt_vocab)
        self.table = TagTable(tgt_vocab)

    def _cost(self, hyp: Tensor, hyp_len: Tensor, ref: Tensor, ref_len: Tensor) -> Tensor:
        return 1.0 - chunk_f1(*chunk_match(hyp, hyp_len, ref, ref_len, self.table).counts())

    def _complete(
        self, prefix: Tensor, prefix_len: Tensor, ref: Tensor, ref_len: Tensor, max_len: int
    ) -> tuple[Tensor, Tensor]:
        table = self.table.to(prefix.device)
        n = prefix.shape[0]
        width = max(prefix.shape[1], min(max_len, ref.shape[1]))  # prefix + completion <= max(P, T')
        full = max(width, ref.shape[1]) + 1  # room to see where a reference chunk cut at max_len ends
        ref_w = pad_to(ref, full)
        ref_w = torch.where(length_mask(ref_len, full), ref_w, torch.zeros_like(ref_w))  # garbage beyond ref_len
        start, in_chunk, _ = chunk_starts(ref_w, ref_len, table)
        pos = torch.arange(full, device=prefix.device).expand(n, -1)  # (N, F)
        p = prefix_len[:, None]
        boundary = (start | ~in_chunk | (pos == 0)) & (pos >= p) & (pos < ref_len[:, None])
        first = torch.where(boundary, pos, full).min(1, keepdim=True).values  # (N, 1) b, or F if none
        last = prefix.gather(1, (p - 1).clamp(0, max(prefix.shape[1] - 1, 0))) if prefix.shape[1] else p
        fill = table.extend[torch.where(p > 0, last, torch.zeros_like(last))]  # (N, 1)
        copied = torch.where(start, table.opening[ref_w], ref_w)  # every reference chunk opens with B-X
        seq = torch.where(pos < first, fill, copied)
        seq = torch.where(pos < p, pad_to(prefix, full), seq)
        seq_len = torch.maximum(prefix_len, torch.clamp(ref_len, max=max_len))
        # a copied chunk split by the cut at max_len: its start s (>= b), when y goes on inside it at max_len
        cut_pos = min(max_len, full - 1)
        chunk_start = torch.cummax(torch.where(start, pos, torch.full_like(pos, -1)), dim=1).values
        split = (
            (ref_len > max_len) & (max_len > prefix_len) & in_chunk[:, cut_pos] & ~start[:, cut_pos]
            & (chunk_start[:, cut_pos] >= first[:, 0])
        )
        s = torch.where(split, chunk_start[:, cut_pos], torch.full_like(prefix_len, full))[:, None]
        if table.outside >= 0:
            seq = torch.where((pos >= s) & (pos >= p), torch.full_like(seq, table.outside), seq)
        else:
            seq_len = torch.minimum(seq_len, s[:, 0])
        seq = seq[:, :width]
        seq = torch.where(pos[:, :width] < seq_len[:, None], seq, torch.zeros_like(seq))
        return seq, seq_len
