"""Reference sets of training examples, looked up by ``batch.index``.

A :class:`~searnn.data.batch.Batch` carries one reference per row (``tgt``). Tasks with several
references per source (``Example.refs``) need the others for ``V_refs`` substitution pools and for
multi-reference rewards (CIDEr-D, BLEU). :class:`ReferenceTable` keeps the *extra* references of the
training split as padded tensors and returns, for a batch, ``refs (B, R, T')`` / ``ref_len (B, R)``
with the row's ``tgt`` first. A row whose ``tgt`` does not match the stored training example at
``batch.index`` (a batch from another split, a re-ordered dataset) gets its ``tgt`` only: rows are
checked with a fingerprint (length and a 31-bit polynomial hash of the tokens).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from searnn.data.batch import Batch, Example
from searnn.smoothing.rewards import pad_reference_sets

_P, _A = 2_147_483_647, 1_000_003


def _fingerprint_list(tokens: Sequence[int]) -> int:
    h = 0
    for tok in tokens:
        h = (h * _A + int(tok) + 1) % _P
    return h * 4096 + len(tokens) % 4096


def fingerprint(tokens: Tensor, lengths: Tensor) -> Tensor:
    """``(B, T), (B,) -> (B,)`` int64, equal to :func:`_fingerprint_list` of each row's first tokens."""
    h = torch.zeros(tokens.shape[0], dtype=torch.long, device=tokens.device)
    for t in range(tokens.shape[1]):
        nxt = (h * _A + tokens[:, t].long() + 1) % _P
        h = torch.where(t < lengths, nxt, h)
    return h * 4096 + lengths % 4096


class ReferenceTable:
    """All references of each training example: its ``tgt`` plus distinct extra ``refs``.

    examples: the training split. ``documents()`` lists every example's reference set (CIDEr-D
    document frequencies); ``batch_refs(batch)`` returns ``(refs (B, R, T') long, ref_len (B, R))``.
    """

    def __init__(self, examples: Sequence[Example]):
        self.sets: list[list[list[int]]] = []
        for ex in examples:
            refs = [list(ex.tgt)]
            for r in ex.refs or []:
                if list(r) not in refs:
                    refs.append(list(r))
            self.sets.append(refs)
        self.fingerprints = torch.tensor([_fingerprint_list(s[0]) for s in self.sets], dtype=torch.long)
        extras = [s[1:] for s in self.sets]
        self.has_extra = any(extras)
        self.extra: Tensor | None = None
        self.extra_len: Tensor | None = None
        if self.has_extra:
            self.extra, self.extra_len = pad_reference_sets([e if e else [] for e in extras])

    def documents(self) -> list[list[list[int]]]:
        return self.sets

    def batch_refs(self, batch: Batch) -> tuple[Tensor, Tensor]:
        tgt_tokens = batch.tgt
        tgt_len = batch.tgt_len - 1  # tokens without EOS
        first = tgt_tokens[:, None, :]
        first_len = tgt_len[:, None]
        if not self.has_extra or self.extra is None or self.extra_len is None:
            return first, first_len
        dev = batch.tgt.device
        if self.extra.device != dev:
            self.extra, self.extra_len, self.fingerprints = (
                self.extra.to(dev), self.extra_len.to(dev), self.fingerprints.to(dev)
            )
        idx = batch.index.clamp(0, len(self.sets) - 1)
        ok = (batch.index < len(self.sets)) & (self.fingerprints[idx] == fingerprint(tgt_tokens, tgt_len))
        extra = self.extra[idx]  # (B, R_x, T_x)
        extra_len = torch.where(ok[:, None], self.extra_len[idx], torch.full_like(self.extra_len[idx], -1))
        width = max(first.shape[2], extra.shape[2])
        first = torch.nn.functional.pad(first, (0, width - first.shape[2]))
        extra = torch.nn.functional.pad(extra, (0, width - extra.shape[2]))
        return torch.cat([first, extra], 1), torch.cat([first_len, extra_len], 1)
