"""Train your own PyTorch model with SeaRNN: a small GRU encoder-decoder written here (not searnn.models)
that follows the step protocol (searnn.protocol), on a tiny reversal task generated in the script.

Run: python examples/own_model_searnn.py [--epochs N] [--train-size N]   (about 20 s on one free CPU core)
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass

import torch
from torch import nn

import searnn

V_SRC, V_TGT = 12, 12  # ids 0..3 are PAD, BOS, EOS, UNK; tokens are 4..11


@dataclass
class GruState:
    """N decoder rows: hidden state h (N, H) and the example of each row, batch_idx (N,)."""

    h: torch.Tensor
    batch_idx: torch.Tensor

    def __len__(self) -> int:
        return int(self.batch_idx.shape[0])

    def index(self, idx: torch.Tensor) -> GruState:
        return GruState(self.h.index_select(0, idx), self.batch_idx.index_select(0, idx))

    @classmethod
    def cat(cls, states: list[GruState]) -> GruState:
        return cls(torch.cat([s.h for s in states]), torch.cat([s.batch_idx for s in states]))


class TinySeq2Seq(nn.Module):
    """GRU encoder, GRU-cell decoder with dot-product attention: encode / init_state / step."""

    def __init__(self, hidden: int = 64):
        super().__init__()
        self.tgt_vocab_size = V_TGT
        self.src_emb = nn.Embedding(V_SRC, hidden)
        self.encoder = nn.GRU(hidden, hidden, batch_first=True)
        self.tgt_emb = nn.Embedding(V_TGT, hidden)
        self.cell = nn.GRUCell(2 * hidden, hidden)
        self.out = nn.Linear(2 * hidden, V_TGT)

    def encode(self, src: torch.Tensor, src_len: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        memory, _ = self.encoder(self.src_emb(src[..., 0]))  # (B, S, H)
        mask = torch.arange(src.shape[1], device=src.device)[None, :] < src_len[:, None]
        return memory, mask

    def init_state(self, enc: tuple[torch.Tensor, torch.Tensor]) -> GruState:
        memory, mask = enc
        mean = (memory * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        return GruState(mean, torch.arange(memory.shape[0], device=memory.device))

    def step(self, enc: tuple[torch.Tensor, torch.Tensor], state: GruState, tokens: torch.Tensor):
        memory, mask = enc[0][state.batch_idx], enc[1][state.batch_idx]  # this row's example
        ctx = self._attend(state.h, memory, mask)
        h = self.cell(torch.cat([self.tgt_emb(tokens), ctx], -1), state.h)
        return self.out(torch.cat([h, self._attend(h, memory, mask)], -1)), GruState(h, state.batch_idx)

    @staticmethod
    def _attend(h: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        scores = (memory @ h[:, :, None]).squeeze(2).masked_fill(~mask, float("-inf"))
        return (torch.softmax(scores, -1)[:, None, :] @ memory).squeeze(1)


def reversal_data(n: int, seed: int) -> list[tuple[list[int], list[int]]]:
    """n pairs (source, reversed source), tokens 4..11, lengths 2..6."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        src = [rng.randrange(4, V_SRC) for _ in range(rng.randint(2, 6))]
        pairs.append((src, src[::-1]))
    return pairs


def tensors(pairs: list[tuple[list[int], list[int]]]) -> tuple[torch.Tensor, ...]:
    """src (B, S, 1), src_len (B,), tgt (B, T) without EOS, tgt_len (B,)."""
    s, t = max(len(a) for a, _ in pairs), max(len(b) for _, b in pairs)
    src = torch.zeros(len(pairs), s, 1, dtype=torch.long)
    tgt = torch.zeros(len(pairs), t, dtype=torch.long)
    for i, (a, b) in enumerate(pairs):
        src[i, : len(a), 0], tgt[i, : len(b)] = torch.tensor(a), torch.tensor(b)
    return src, torch.tensor([len(a) for a, _ in pairs]), tgt, torch.tensor([len(b) for _, b in pairs])


def validate(model: nn.Module, pairs: list[tuple[list[int], list[int]]]) -> float:
    """Edit distance / reference length, %, of greedy decoding."""
    src, src_len, _, _ = tensors(pairs)
    hyps = searnn.decode.to_lists(*searnn.decode.greedy(model, src, src_len, max_len=10))
    return searnn.metric("edit", hyps, [b for _, b in pairs]).value


def main(loss_fn: object | None = None, name: str = "SeaRNN") -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-size", type=int, default=640)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = TinySeq2Seq()
    if loss_fn is None:
        loss_fn = searnn.SearnnLoss(vocab=V_TGT, cost="edit", rollin="learned", rollout="mixed")
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    train, valid = reversal_data(args.train_size, seed=1), reversal_data(100, seed=2)
    for epoch in range(args.epochs):
        model.train()
        for lo in range(0, len(train), 32):
            out = loss_fn(model, *tensors(train[lo : lo + 32]))
            optimizer.zero_grad()
            out.loss.backward()
            optimizer.step()
        error = validate(model, valid)
        print(f"epoch {epoch + 1} ({name}): loss {out.loss.item():.3f}, validation edit error {error:.1f}%")
    return validate(model, valid)


if __name__ == "__main__":
    main()
