"""searnn: sequence-to-sequence RNNs trained with losses that know the test metric.

Implements SeaRNN (Leblond et al., ICLR 2018) and token- and sequence-level loss smoothing
(Elbayad et al., ACL 2018) on top of one RNN encoder-decoder, one training loop and batched costs.
"""

__version__ = "0.1.0"
