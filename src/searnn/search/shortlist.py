"""Shortlisted roll-outs: learned roll-outs take their argmax over a per-batch shortlist of tokens.

On a large target vocabulary (Multi30k: 5,917 words) a learned roll-out step is dominated by the
output projection onto every word and the argmax over them. With ``rollout_vocab='shortlist'`` the
roll-outs project the decoder output onto the shortlist's rows of the output layer only. The shortlist
of a batch is the union of

* the batch's reference tokens;
* the K most frequent target tokens of the training data (:func:`frequent_tokens`);
* every token rolled out at the batch's cells (the candidates);
* EOS,

less the tokens no decoder emits (PAD, BOS; EOS on fixed-length tasks). This is an approximation of
the paper's roll-outs (the argmax may differ when the full-vocabulary argmax lies outside the
shortlist); its agreement with the full argmax is measured on a sample of rows of every step and logged
as ``shortlist_agree``. The roll-in, the loss and evaluation keep the full softmax.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from searnn.data.batch import Example
from searnn.data.vocab import EOS_ID, PAD_ID

ROLLOUT_VOCABS = ("full", "shortlist")
"""Vocabulary of the learned roll-outs' argmax (``SearnnConfig.rollout_vocab``)."""


def frequent_tokens(examples: Sequence[Example], vocab_size: int, k: int) -> torch.Tensor:
    """``(min(k, V),)`` long: the ``k`` most frequent target tokens of ``examples`` (ties: lower id
    first), the tokens never seen after the seen ones."""
    counts = np.zeros(vocab_size, dtype=np.int64)
    for ex in examples:
        if len(ex.tgt):
            counts += np.bincount(np.asarray(ex.tgt, dtype=np.int64), minlength=vocab_size)[:vocab_size]
    order = np.argsort(-counts, kind="stable")[: max(min(k, vocab_size), 0)]
    return torch.from_numpy(order.astype(np.int64))


def build_shortlist(
    ref: torch.Tensor, candidates: torch.Tensor, frequent: torch.Tensor, vocab_size: int
) -> torch.Tensor:
    """The batch's shortlist, ``(M,)`` long sorted token ids (see the module docstring).

    ref: ``(B, T)`` long reference tokens (PAD ignored); candidates: ``(N,)`` long tokens rolled out;
    frequent: ``(K,)`` long (:func:`frequent_tokens`). The decoder's blocked tokens are removed by the
    scorer (:class:`searnn.decoding.greedy.Scorer`); PAD is removed here.
    """
    device = ref.device
    keep = torch.zeros(vocab_size, dtype=torch.bool, device=device)
    keep[ref.reshape(-1)] = True
    keep[candidates.to(device)] = True
    keep[frequent.to(device)] = True
    keep[EOS_ID] = True
    keep[PAD_ID] = False
    return keep.nonzero().squeeze(1)
