"""Building blocks of token- and sequence-level loss smoothing (Elbayad, Besacier, Verbeek, ACL 2018).

* :mod:`.similarity`: sparse top-k token similarities (GloVe, PPMI+SVD on the training targets, model
  output embeddings) and the smoothed token targets of eq. (13)-(14);
* :mod:`.sampling`: per-sentence stratified Hamming / edit samplers in log-space with exact proposal
  probabilities, substitution pools V / V_batch / V_refs;
* :mod:`.rewards`: batched sequence rewards (sentence BLEU, CIDEr-D, Hamming, edit) on token ids;
* :mod:`.ngrams`: n-gram codes and counts on tensors; :mod:`.references`: multi-reference lookup.

The objectives live in :mod:`searnn.objectives.token_smoothing`, :mod:`searnn.objectives.seq_smoothing`
and :mod:`searnn.objectives.baselines`.
"""

from searnn.smoothing.rewards import CiderD, make_reward, sentence_bleu
from searnn.smoothing.sampling import (
    Samples,
    SubstitutionPool,
    batch_pool,
    edit_sample,
    full_pool,
    hamming_distance_log_probs,
    hamming_sample,
    refs_pool,
)
from searnn.smoothing.similarity import SparseSimilarity, target_distribution, topk_cosine

__all__ = [
    "CiderD",
    "Samples",
    "SparseSimilarity",
    "SubstitutionPool",
    "batch_pool",
    "edit_sample",
    "full_pool",
    "hamming_distance_log_probs",
    "hamming_sample",
    "make_reward",
    "refs_pool",
    "sentence_bleu",
    "target_distribution",
    "topk_cosine",
]
