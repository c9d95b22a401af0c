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
    ``begin (V,)``/``inside (V,)`` bool, ``extend (V,)`` long (B-X -> I-X, others unchanged, specials -> O).

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
        extend = []
        for i, tok in enumerate(vocab.itos):
            if begin[i]:
                extend.append(vocab.stoi.get("I-" + tok[2:], i))
            elif i < len(SPECIALS) and outside_id is not None:
                extend.append(outside_id)
            else:
                extend.append(i)
        self.type_id = torch.tensor(type_ids, dtype=torch.long)
        self.begin = torch.tensor(begin, dtype=torch.bool)
        self.inside = torch.tensor(inside, dtype=torch.bool)
        self.extend = torch.tensor(extend, dtype=torch.long)

    def to(self, device: torch.device) -> TagTable:
        """Move the tables to ``device`` (in place, cheap when already there); returns self."""
        if self.type_id.device != device:
            for name in ("type_id", "begin", "inside", "extend"):
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
    """``f1``: 1 - sentence chunk F1 (SEARNN.md 1.5 ``sentence-F1``); a perfect empty-vs-empty pair costs 0.

    Oracle (``maximize-F1``, SEARNN.md 1.4): after the prefix, extend its last chunk (B-X -> I-X; I-X and
    O repeat) up to the first reference chunk boundary at or after the prefix end (position 0, an O, or a
    reference chunk start), then copy the reference by position. The extension adds no hypothesis chunk
    and every reference chunk starting at or after the prefix end is then matched, so no completion does
    better. A prefix at least as long as the reference is returned unchanged.
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
        width = max(prefix.shape[1], min(max_len, ref.shape[1]))  # prefix + completion <= max(P, T')
        ref_w = pad_to(ref, width)
        start, in_chunk, _ = chunk_starts(ref_w, ref_len, table)
        pos = torch.arange(width, device=prefix.device).expand(prefix.shape[0], -1)  # (N, L)
        p = prefix_len[:, None]
        boundary = (start | ~in_chunk | (pos == 0)) & (pos >= p) & (pos < ref_len[:, None])
        marked = torch.where(boundary, pos, width)
        first = torch.cat([marked, marked.new_full((len(marked), 1), width)], 1).min(1, keepdim=True).values
        last = prefix.gather(1, (p - 1).clamp(0, max(prefix.shape[1] - 1, 0))) if prefix.shape[1] else p
        fill = table.extend[torch.where(p > 0, last, torch.zeros_like(last))]  # (N, 1)
        seq_len = torch.maximum(prefix_len, torch.clamp(ref_len, max=max_len))
        seq = torch.where(pos < first, fill, ref_w)
        seq = torch.where(pos < p, pad_to(prefix, width), seq)
        seq = torch.where(pos < seq_len[:, None], seq, torch.zeros_like(seq))
        return seq, seq_len
