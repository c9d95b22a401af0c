"""RNN encoder-decoder models: ``encode()``, ``init_state()``, ``step()``, ``forward()``.

See :mod:`searnn.models.seq2seq` for the architecture and :mod:`searnn.models.state` for the decoder
state rows that decoding and SeaRNN roll-outs share.
"""

from searnn.models.attention import Attention
from searnn.models.config import ATTENTIONS, CELLS, ModelConfig
from searnn.models.encoder import Encoder
from searnn.models.seq2seq import Seq2Seq
from searnn.models.state import DecoderState, Encoded, RowLayout

__all__ = [
    "ATTENTIONS",
    "CELLS",
    "Attention",
    "DecoderState",
    "Encoded",
    "Encoder",
    "ModelConfig",
    "RowLayout",
    "Seq2Seq",
]
