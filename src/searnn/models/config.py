"""Configuration of the RNN encoder-decoder."""

from __future__ import annotations

from dataclasses import dataclass, field

from searnn.errors import ConfigError, unknown_name

ARCHS = ("rnn", "transformer")
CELLS = ("gru", "lstm")
ATTENTIONS = ("none", "additive", "multiplicative")


@dataclass
class ModelConfig:
    """Architecture of :class:`searnn.models.Seq2Seq`.

    Defaults follow the SeaRNN OCR model (GRU 128, one layer, no attention). The paper's NMT model is
    ``bidirectional=True, attention="additive", hidden=256, emb_dim=256, tgt_emb_dim=256``.
    """

    arch: str = field(
        default="rnn",
        metadata={
            "help": "rnn (the recurrent encoder-decoder) | transformer (pre-LayerNorm Transformer, "
            "searnn.models.transformer: width --hidden, depth --enc-layers / --dec-layers)"
        },
    )
    cell: str = field(default="gru", metadata={"help": "recurrent cell of encoder and decoder: gru | lstm"})
    emb_dim: int = field(
        default=128,
        metadata={
            "help": "source embedding size per token stream (streams are concatenated); for feature "
            "sources (OCR pixels) the size of the Linear projection of each feature vector"
        },
    )
    hidden: int = field(
        default=128,
        metadata={"help": "hidden size of the decoder and of each encoder direction"},
    )
    enc_layers: int = field(default=1, metadata={"help": "number of stacked encoder RNN layers"})
    dec_layers: int = field(default=1, metadata={"help": "number of stacked decoder RNN layers"})
    bidirectional: bool = field(
        default=False,
        metadata={
            "help": "bidirectional encoder (memory size 2*hidden; the decoder's initial state then "
            "goes through a Linear+tanh bridge)"
        },
    )
    attention: str = field(
        default="none",
        metadata={
            "help": "attention over the encoder memory, applied after the decoder RNN (Luong placement): "
            "none | additive (v.tanh(W_c m + W_q h)) | multiplicative (h^T W m)"
        },
    )
    aligned_input: bool = field(
        default=False,
        metadata={
            "help": "fixed-length tasks (one output per source position): also feed the encoder output at "
            "position t as decoder input at step t (a hard monotonic alignment; zeros past the source end)"
        },
    )
    input_feed: bool = field(
        default=False,
        metadata={
            "help": "feed the previous attentional output vector as extra decoder input (teacher-forced "
            "decoding then loops over time steps)"
        },
    )
    dropout: float = field(
        default=0.0,
        metadata={
            "help": "dropout probability on embeddings, between stacked RNN layers and before the "
            "output projection"
        },
    )
    tgt_emb_dim: int = field(default=128, metadata={"help": "target (decoder input) embedding size"})
    heads: int = field(default=4, metadata={"help": "transformer: attention heads (must divide --hidden)"})
    ffn_dim: int = field(default=512, metadata={"help": "transformer: inner size of each feed-forward block"})
    tie_embeddings: bool = field(
        default=False,
        metadata={"help": "transformer: the output projection shares the target embedding matrix"},
    )

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise unknown_name("arch", self.arch, ARCHS)
        if self.cell not in CELLS:
            raise unknown_name("cell", self.cell, CELLS)
        if self.attention not in ATTENTIONS:
            raise unknown_name("attention", self.attention, ATTENTIONS)
        for name in ("emb_dim", "hidden", "enc_layers", "dec_layers", "tgt_emb_dim", "heads", "ffn_dim"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"model.{name} must be a positive integer, got {value!r}")
        if not isinstance(self.dropout, (int, float)) or not 0.0 <= float(self.dropout) < 1.0:
            raise ConfigError(f"model.dropout must be in [0, 1), got {self.dropout!r}")
        self.dropout = float(self.dropout)
        if self.arch == "transformer" and self.hidden % self.heads:
            raise ConfigError(
                f"model.heads and hidden must divide evenly for the transformer "
                f"(hidden {self.hidden}, heads {self.heads})"
            )
        for name in ("bidirectional", "input_feed", "aligned_input", "tie_embeddings"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"model.{name} must be true or false, got {getattr(self, name)!r}")
