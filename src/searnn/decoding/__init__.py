"""Batched decoding from any decoder state: greedy and beam search, plus whole-batch helpers.

All functions run under ``torch.no_grad`` and expect the model in eval mode (the caller's
responsibility). Outputs exclude EOS; PAD and BOS are never emitted; fixed-length tasks block EOS and
emit exactly ``max_len`` (= ``src_len``) tokens.
"""

from searnn.decoding.batch import decode_batch, decode_batch_tensors, default_max_len
from searnn.decoding.beam import LEN_NORMS, beam_search, length_penalty
from searnn.decoding.greedy import blocked_bias, greedy

__all__ = [
    "LEN_NORMS",
    "beam_search",
    "blocked_bias",
    "decode_batch",
    "decode_batch_tensors",
    "default_max_len",
    "greedy",
    "length_penalty",
]
