"""Token vocabularies with fixed special symbols.

Every target vocabulary starts with the same four specials so that costs and decoders can rely on
their ids: ``PAD=0, BOS=1, EOS=2, UNK=3``. Source vocabularies use the same layout (BOS/EOS unused).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS = (PAD, BOS, EOS, UNK)
PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3


class Vocab:
    """Bidirectional token <-> id map. Ids 0..3 are the specials ``PAD, BOS, EOS, UNK``."""

    def __init__(self, tokens: Iterable[str]):
        self.itos: list[str] = list(SPECIALS)
        self.stoi: dict[str, int] = {t: i for i, t in enumerate(self.itos)}
        for tok in tokens:
            if tok not in self.stoi:
                self.stoi[tok] = len(self.itos)
                self.itos.append(tok)

    pad_id = PAD_ID
    bos_id = BOS_ID
    eos_id = EOS_ID
    unk_id = UNK_ID

    @classmethod
    def build(
        cls, sequences: Iterable[Sequence[str]], min_count: int = 1, max_size: int | None = None
    ) -> Vocab:
        """Vocabulary of the tokens seen at least ``min_count`` times, most frequent first (ties by token)."""
        counts = Counter(tok for seq in sequences for tok in seq)
        items = sorted(((c, t) for t, c in counts.items() if c >= min_count), key=lambda x: (-x[0], x[1]))
        if max_size is not None:
            items = items[:max_size]
        return cls(t for _, t in items)

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def encode(self, tokens: Sequence[str]) -> list[int]:
        """Token strings -> ids; unknown tokens map to ``UNK_ID``."""
        return [self.stoi.get(t, UNK_ID) for t in tokens]

    def decode(self, ids: Iterable[int], strip: bool = True) -> list[str]:
        """Ids -> token strings. With ``strip``, stops at EOS and drops PAD/BOS."""
        out: list[str] = []
        for i in ids:
            i = int(i)
            if strip and i == EOS_ID:
                break
            if strip and i in (PAD_ID, BOS_ID):
                continue
            out.append(self.itos[i] if 0 <= i < len(self.itos) else UNK)
        return out

    def to_json(self) -> list[str]:
        return list(self.itos[len(SPECIALS):])

    @classmethod
    def from_json(cls, tokens: list[str]) -> Vocab:
        return cls(tokens)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json()))

    @classmethod
    def load(cls, path: str | Path) -> Vocab:
        return cls.from_json(json.loads(Path(path).read_text()))
