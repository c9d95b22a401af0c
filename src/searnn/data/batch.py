"""Examples, padded batches and length-bucketed batching.

Conventions used by every module of the package:

* a **source** is either token ids with ``K`` parallel streams (``src`` long ``(B, S, K)``; K = 1 for
  plain text, 2 for chunking's words + POS tags) or feature vectors (``src`` float ``(B, S, F)``, OCR);
* a **target** holds the output tokens followed by one EOS, padded with PAD: ``tgt`` long ``(B, T)``,
  ``tgt_len`` = number of tokens + 1 (the EOS cell is trained like the others);
* the decoder input at step t is BOS for t = 0 and ``tgt[:, t-1]`` afterwards.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from searnn.data.vocab import EOS_ID, PAD_ID
from searnn.syncguard import mark_host


@dataclass
class Example:
    """One (source, target) pair.

    ``src``: token ids ``list[list[int]]`` (one inner list per position, K streams) or a float array
    ``(S, F)``; ``tgt``: target token ids without EOS; ``refs``: optional extra references (token ids).
    """

    src: list[list[int]] | np.ndarray
    tgt: list[int]
    refs: list[list[int]] | None = None
    meta: dict = field(default_factory=dict)

    @property
    def src_len(self) -> int:
        return len(self.src)


@dataclass
class Batch:
    """A padded mini-batch on one device.

    src: ``(B, S, K)`` long or ``(B, S, F)`` float; src_len: ``(B,)`` long;
    tgt: ``(B, T)`` long, tokens + EOS + PAD; tgt_len: ``(B,)`` long (tokens + 1);
    index: ``(B,)`` long, position of each example in its split (for ordered outputs);
    src_len_host: ``(B,)`` long, a copy of ``src_len`` that stays on the CPU when the batch moves to a device
    (:func:`collate` makes it; None when unknown): the encoder packs the sources with it without a
    device->host copy (SeaRNN's static-shape search, :mod:`searnn.search.static`).
    """

    src: torch.Tensor
    src_len: torch.Tensor
    tgt: torch.Tensor
    tgt_len: torch.Tensor
    index: torch.Tensor
    src_len_host: torch.Tensor | None = field(default=None, repr=False, compare=False)

    @property
    def size(self) -> int:
        return int(self.src.shape[0])

    def to(self, device: torch.device | str) -> Batch:
        moved = (t.to(device) for t in (self.src, self.src_len, self.tgt, self.tgt_len, self.index))
        return Batch(*moved, src_len_host=self.src_len_host)

    @property
    def decoder_input(self) -> torch.Tensor:
        """``(B, T)``: BOS followed by the target shifted right (teacher forcing)."""
        bos = torch.full_like(self.tgt[:, :1], 1)
        return torch.cat([bos, self.tgt[:, :-1]], dim=1)

    @property
    def tgt_mask(self) -> torch.Tensor:
        """``(B, T)`` bool, True on the cells that are trained (tokens and the EOS cell)."""
        steps = torch.arange(self.tgt.shape[1], device=self.tgt.device)
        return steps[None, :] < self.tgt_len[:, None]


def collate(examples: Sequence[Example], indices: Sequence[int] | None = None) -> Batch:
    """Pad a list of examples into a :class:`Batch` (on CPU)."""
    b = len(examples)
    s = max(ex.src_len for ex in examples)
    t = max(len(ex.tgt) for ex in examples) + 1
    first = examples[0].src
    if isinstance(first, np.ndarray):
        src = torch.zeros(b, s, first.shape[1], dtype=torch.float32)
        for i, ex in enumerate(examples):
            src[i, : ex.src_len] = torch.from_numpy(np.asarray(ex.src, dtype=np.float32))
    else:
        k = len(first[0])
        src = torch.full((b, s, k), PAD_ID, dtype=torch.long)
        for i, ex in enumerate(examples):
            src[i, : ex.src_len] = torch.tensor(ex.src, dtype=torch.long).view(-1, k)
    tgt = torch.full((b, t), PAD_ID, dtype=torch.long)
    for i, ex in enumerate(examples):
        tgt[i, : len(ex.tgt)] = torch.tensor(ex.tgt, dtype=torch.long)
        tgt[i, len(ex.tgt)] = EOS_ID
    src_len = torch.tensor([ex.src_len for ex in examples], dtype=torch.long)
    return Batch(
        src=src,
        src_len=src_len,
        tgt=tgt,
        tgt_len=torch.tensor([len(ex.tgt) + 1 for ex in examples], dtype=torch.long),
        index=torch.tensor(list(indices) if indices is not None else range(b), dtype=torch.long),
        src_len_host=mark_host(src_len.clone()),
    )


def make_batches(
    examples: Sequence[Example],
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
    bucket: bool = True,
) -> Iterator[Batch]:
    """Yield padded batches of ``batch_size`` examples.

    With ``bucket``, examples are grouped by (source, target) length so that batches carry little
    padding: when shuffling, the order is shuffled, cut into pools of 50 batches, each pool sorted by
    length and cut into batches, and the batches shuffled again (all seeded by ``seed``).
    """
    order = list(range(len(examples)))
    rng = random.Random(seed)
    if shuffle:
        rng.shuffle(order)
    if bucket:
        def key(i: int) -> tuple[int, int]:
            return (examples[i].src_len, len(examples[i].tgt))

        if shuffle:
            pool = batch_size * 50
            order = [i for p in range(0, len(order), pool) for i in sorted(order[p : p + pool], key=key)]
        else:
            order = sorted(order, key=key)
    chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if shuffle:
        rng.shuffle(chunks)
    for chunk in chunks:
        yield collate([examples[i] for i in chunk], chunk)
