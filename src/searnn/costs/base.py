"""The cost seam.

A cost scores complete hypotheses against references on the model's device, batched, without
autograd and without a Python loop over the N rows::

    cost(hyp (N, T) long, hyp_len (N,) long, ref (N, T') long, ref_len (N,) long) -> (N,) float

Sequences hold target token ids **without** BOS/EOS; positions at or beyond ``*_len`` are ignored
(whatever they contain). A cost is 0 for a perfect hypothesis; larger is worse.

Each cost also carries its reference policy (oracle): ``complete(prefix, prefix_len, ref, ref_len,
max_len)`` returns the cost-minimising completion of each prefix.
"""
