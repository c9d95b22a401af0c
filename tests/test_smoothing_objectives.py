"""Token-level / sequence-level smoothing objectives and the label-smoothing / entropy baselines."""

from __future__ import annotations

import dataclasses
import random

import pytest
import torch
import torch.nn.functional as F

from searnn.data.batch import Example, collate
from searnn.data.task import TaskData
from searnn.data.vocab import Vocab
from searnn.errors import ConfigError
from searnn.objectives.base import NORMALIZATIONS, normalize
from searnn.objectives.baselines import (
    EntropyRegConfig,
    EntropyRegularized,
    LabelSmoothing,
    LabelSmoothingConfig,
)
from searnn.objectives.seq_smoothing import (
    SeqSmoothing,
    SeqSmoothingConfig,
    TokSeq,
    TokSeqConfig,
    combine_sequence_losses,
    importance_weights,
)
from searnn.objectives.token_smoothing import TokenSmoothing, TokenSmoothingConfig
from searnn.smoothing.references import ReferenceTable

WORDS = "a man woman dog cat runs walks the on in red blue big small street park".split()


def make_task(seed: int = 0, n: int = 60, multi_ref: bool = False) -> TaskData:
    vocab = Vocab(WORDS)
    rng = random.Random(seed)
    v = len(vocab)

    def sent(lo: int = 1, hi: int = 8) -> list[int]:
        return [rng.randint(4, v - 1) for _ in range(rng.randint(lo, hi))]

    train = []
    for _ in range(n):
        tgt = sent()
        refs = [tgt, sent()] if multi_ref else None
        train.append(Example(src=[[t] for t in sent(1, 6)], tgt=tgt, refs=refs))
    return TaskData(
        name="toy", train=train, valid=train[:8], test=train[:8], tgt_vocab=vocab, src_vocabs=[vocab],
        src_feature_dim=None, fixed_length=False, metric="bleu", cost="bleu", lower_is_better=False,
        parse_source=lambda s: [], format_output=lambda ids: "",
    )


class StubSeq2Seq(torch.nn.Module):
    """GRU decoder whose initial state is the mean source embedding; ``out`` is the output projection."""

    def __init__(self, vocab_size: int, hidden: int = 16):
        super().__init__()
        self.src_emb = torch.nn.Embedding(vocab_size, hidden)
        self.tgt_embedding = torch.nn.Embedding(vocab_size, hidden)
        self.rnn = torch.nn.GRU(hidden, hidden, batch_first=True)
        self.out = torch.nn.Linear(hidden, vocab_size)

    def forward(self, src, src_len, dec_input):
        mask = (torch.arange(src.shape[1]) < src_len[:, None]).float()[..., None]
        h0 = (self.src_emb(src[..., 0]) * mask).sum(1) / src_len[:, None].float()
        out, _ = self.rnn(self.tgt_embedding(dec_input), h0[None].contiguous())
        return self.out(out)


@pytest.fixture(scope="module")
def setup():
    task = make_task()
    torch.manual_seed(0)
    model = StubSeq2Seq(len(task.tgt_vocab)).eval()
    batch = collate(task.train[:12], list(range(12)))
    return task, model, batch


def reference_ce(model, batch, mode: str) -> torch.Tensor:
    logits = model(batch.src, batch.src_len, batch.decoder_input)
    logp = torch.log_softmax(logits, -1)
    nll = -logp.gather(2, batch.tgt[..., None]).squeeze(-1)
    return normalize(nll, batch.tgt_mask, mode)[0]


OFF = [
    (TokenSmoothing, TokenSmoothingConfig, {"alpha": 0.0, "similarity": "train"}),
    (TokenSmoothing, TokenSmoothingConfig, {"alpha": 0.0, "similarity": "uniform"}),
    (SeqSmoothing, SeqSmoothingConfig, {"alpha": 0.0}),
    (SeqSmoothing, SeqSmoothingConfig, {"alpha": 0.0, "reward": "bleu", "lazy": False}),
    (TokSeq, TokSeqConfig, {"alpha1": 0.0, "alpha2": 0.0, "similarity": "model"}),
    (LabelSmoothing, LabelSmoothingConfig, {"alpha": 0.0}),
    (EntropyRegularized, EntropyRegConfig, {"gamma": 0.0}),
]


@pytest.mark.parametrize("mode", NORMALIZATIONS)
@pytest.mark.parametrize(("cls", "cfg_cls", "kwargs"), OFF, ids=lambda x: getattr(x, "__name__", str(x)))
def test_smoothing_off_equals_mle(setup, cls, cfg_cls, kwargs, mode):
    task, model, batch = setup
    obj = cls(cfg_cls(normalization=mode, **kwargs), task)
    out = obj(model, batch)
    assert torch.allclose(out.loss, reference_ce(model, batch, mode), atol=1e-6, rtol=1e-6)


def test_sequence_combination_with_alpha_zero_is_mle_normalisation(setup):
    _, model, batch = setup
    g = torch.Generator().manual_seed(0)
    cell = torch.rand(batch.tgt.shape, generator=g)
    s_cell = torch.rand(batch.tgt.shape[0], 3, batch.tgt.shape[1], generator=g)
    s_mask = batch.tgt_mask[:, None].expand(-1, 3, -1)
    w = torch.softmax(torch.randn(batch.tgt.shape[0], 3, generator=g), 1)
    for mode in NORMALIZATIONS:
        ours, _ = combine_sequence_losses(cell, batch.tgt_mask, s_cell, s_mask, w, 0.0, mode)
        assert torch.allclose(ours, normalize(cell, batch.tgt_mask, mode)[0])
        # alpha = 1, samples with the ground truth's lengths: per-cell mixture of the weighted samples
        ours, _ = combine_sequence_losses(cell, batch.tgt_mask, s_cell, s_mask, w, 1.0, mode)
        assert torch.allclose(ours, normalize((w[..., None] * s_cell).sum(1), batch.tgt_mask, mode)[0])


@pytest.mark.parametrize("divergence", ["kl", "ce"])
def test_token_smoothing_tau_to_zero_is_mle(setup, divergence):
    task, model, batch = setup
    expected = reference_ce(model, batch, "cell-per-seq").detach()
    losses = []
    for tau in (1.0, 0.1, 1e-3):
        cfg = TokenSmoothingConfig(alpha=1.0, tok_tau=tau, similarity="train", divergence=divergence)
        losses.append(float(TokenSmoothing(cfg, task)(model, batch).loss.detach()))
    gaps = [abs(x - float(expected)) for x in losses]
    assert gaps[-1] < 1e-4 and gaps[0] > gaps[-1]


def test_token_smoothing_matches_dense_reference(setup):
    task, model, batch = setup
    cfg = TokenSmoothingConfig(alpha=0.4, tok_tau=0.3, similarity="train", beta=0.5, top_k=6, divergence="kl")
    obj = TokenSmoothing(cfg, task)
    out = obj(model, batch)
    sm = obj.smoother
    logp = torch.log_softmax(model(batch.src, batch.src_len, batch.decoder_input), -1)
    v = logp.shape[-1]
    dense = torch.zeros(v, v).scatter_(1, sm.sim.indices, sm.probs)  # test only: V is tiny
    r = dense[batch.tgt]  # (B, T, V)
    kl = (torch.where(r > 0, r * r.clamp(min=1e-30).log(), torch.zeros_like(r)) - r * logp).sum(-1)
    nll = -logp.gather(2, batch.tgt[..., None]).squeeze(-1)
    expected = normalize(0.6 * nll + 0.4 * kl, batch.tgt_mask, "cell-per-seq")[0]
    assert torch.allclose(out.loss, expected, atol=1e-5)
    assert 0 < out.logs["tok_self_mass"] < 1


def test_label_smoothing_and_entropy_regulariser(setup):
    task, model, batch = setup
    logp = torch.log_softmax(model(batch.src, batch.src_len, batch.decoder_input), -1)
    nll = -logp.gather(2, batch.tgt[..., None]).squeeze(-1)
    allowed = torch.ones(logp.shape[-1], dtype=torch.bool)
    allowed[[0, 1, 3]] = False
    uni = -logp[..., allowed].mean(-1)
    ls = LabelSmoothing(LabelSmoothingConfig(alpha=0.2), task)(model, batch)
    assert torch.allclose(ls.loss, normalize(0.8 * nll + 0.2 * uni, batch.tgt_mask, "cell-per-seq")[0], atol=1e-6)
    ent = -(logp.exp() * logp).sum(-1)
    er = EntropyRegularized(EntropyRegConfig(gamma=0.3), task)(model, batch)
    assert torch.allclose(er.loss, normalize(nll - 0.3 * ent, batch.tgt_mask, "cell-per-seq")[0], atol=1e-6)


@pytest.mark.parametrize("reward", ["hamming", "bleu", "cider", "edit"])
@pytest.mark.parametrize("tok", [False, True])
def test_lazy_equals_full_when_samples_are_the_ground_truth(setup, reward, tok):
    task, model, batch = setup
    common = {"reward": reward, "proposal_tau": 1e-4, "num_samples": 3}
    if tok:
        lazy = TokSeq(TokSeqConfig(alpha1=0.5, alpha2=0.3, similarity="train", lazy=True, **common), task)
        full = TokSeq(TokSeqConfig(alpha1=0.5, alpha2=0.3, similarity="train", lazy=False, **common), task)
    else:
        lazy = SeqSmoothing(SeqSmoothingConfig(alpha=0.5, lazy=True, **common), task)
        full = SeqSmoothing(SeqSmoothingConfig(alpha=0.5, lazy=False, **common), task)
    a, b = lazy(model, batch), full(model, batch)
    assert a.logs["seq_distance"] == 0 and b.logs["seq_distance"] == 0
    assert torch.allclose(a.loss, b.loss, atol=1e-5)
    if not tok:  # every sequence is y*: eq. (15) collapses to the MLE loss
        assert torch.allclose(a.loss, reference_ce(model, batch, "cell-per-seq"), atol=1e-5)


def test_lazy_sample_scores_read_ground_truth_states(setup):
    """alpha = 1, lazy: the loss is the weighted NLL of the samples under the ground-truth prefixes."""
    task, model, batch = setup
    torch.manual_seed(5)
    obj = SeqSmoothing(SeqSmoothingConfig(alpha=1.0, proposal_tau=0.5, num_samples=4, sub_vocab="full"), task)
    state = torch.get_rng_state()
    out = obj(model, batch)
    torch.set_rng_state(state)
    samples, weights, _ = obj.core.sampler(batch)
    logp = torch.log_softmax(model(batch.src, batch.src_len, batch.decoder_input), -1)
    nll = -logp[:, None].expand(-1, 4, -1, -1).gather(3, samples.tokens[..., None]).squeeze(-1)  # (B, L, T)
    mask = batch.tgt_mask
    per = ((nll * mask[:, None]).sum(2) / mask.sum(1, keepdim=True) * weights).sum(1)
    assert torch.allclose(out.loss, per.mean(), atol=1e-5)
    assert out.logs["seq_distance"] > 0
    assert 1.0 <= out.logs["seq_ess"] <= 4.0 + 1e-5
    assert out.logs["seq_ess"] == pytest.approx(4.0, rel=1e-4)  # hamming reward, same taus: uniform


def test_importance_weights_are_normalised_per_source():
    reward = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    log_q = torch.tensor([[0.0, 0.0, 0.0], [-1.0, -2.0, -3.0]])
    w = importance_weights(reward, 0.5, log_q)
    assert torch.allclose(w.sum(1), torch.ones(2))
    assert w[0, 0] > w[0, 1] and w[1, 2] > w[1, 1] > w[1, 0]  # rarer under q -> heavier


@pytest.mark.parametrize("sub_vocab", ["refs", "batch", "full"])
def test_multi_reference_rewards_and_refs_pool(sub_vocab):
    task = make_task(seed=1, multi_ref=True)
    torch.manual_seed(1)
    model = StubSeq2Seq(len(task.tgt_vocab)).eval()
    batch = collate(task.train[:10], list(range(10)))
    table = ReferenceTable(task.train)
    refs, ref_len = table.batch_refs(batch)
    assert refs.shape[1] == 2 and (ref_len[:, 1] >= 0).all()
    wrong = collate(task.train[10:20], list(range(10)))  # indices that do not match: tgt only
    assert (table.batch_refs(wrong)[1][:, 1] == -1).all()
    obj = SeqSmoothing(SeqSmoothingConfig(alpha=0.5, reward="cider", sub_vocab=sub_vocab, proposal_tau=1.0), task)
    out = obj(model, batch)
    assert torch.isfinite(out.loss) and out.logs["seq_reward"] > 0


def test_edit_proposal_trains_non_lazy(setup):
    task, model, batch = setup
    obj = SeqSmoothing(SeqSmoothingConfig(alpha=0.5, proposal="edit", lazy=False, reward="edit"), task)
    out = obj(model, batch)
    assert torch.isfinite(out.loss)
    with pytest.raises(ConfigError, match="lazy"):
        SeqSmoothingConfig(proposal="edit", lazy=True)


ALL = [
    (TokenSmoothing, TokenSmoothingConfig(similarity="model", refresh_every=2)),
    (TokenSmoothing, TokenSmoothingConfig(similarity="glove", beta=0.3)),
    (SeqSmoothing, SeqSmoothingConfig(reward="bleu")),
    (SeqSmoothing, SeqSmoothingConfig(reward="cider", lazy=False, sub_vocab="refs")),
    (TokSeq, TokSeqConfig(reward="bleu", similarity="train")),
    (LabelSmoothing, LabelSmoothingConfig()),
    (EntropyRegularized, EntropyRegConfig()),
]


@pytest.mark.parametrize(("cls", "cfg"), ALL, ids=lambda x: getattr(x, "__name__", ""))
def test_objectives_train(cls, cfg):
    task = make_task(seed=2)
    torch.manual_seed(2)
    model = StubSeq2Seq(len(task.tgt_vocab))
    obj = cls(cfg, task)
    obj.start_epoch(0, 1)
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    batch = collate(task.train[:16], list(range(16)))
    first = None
    for _ in range(15):
        out = obj(model, batch)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        first = first if first is not None else float(out.loss.detach())
        assert all(isinstance(v, float) for v in out.logs.values())
    assert float(out.loss.detach()) < first


CONFIGS = [TokenSmoothingConfig, SeqSmoothingConfig, TokSeqConfig, LabelSmoothingConfig, EntropyRegConfig]


@pytest.mark.parametrize("cfg_cls", CONFIGS)
def test_configs_have_help_and_validate(cfg_cls):
    for f in dataclasses.fields(cfg_cls):
        assert f.metadata.get("help"), f"{cfg_cls.__name__}.{f.name} has no help"
    with pytest.raises(ConfigError, match="normalization"):
        cfg_cls(normalization="per-token")


@pytest.mark.parametrize(
    ("cfg_cls", "kwargs", "match"),
    [
        (TokenSmoothingConfig, {"similarity": "word2vec"}, "valid: glove, model, train, uniform"),
        (TokenSmoothingConfig, {"alpha": 1.5}, "alpha"),
        (TokenSmoothingConfig, {"tok_tau": 0.0}, "tok_tau"),
        (TokenSmoothingConfig, {"top_k": 0}, "top_k"),
        (TokenSmoothingConfig, {"embeddings_path": "/nonexistent.txt"}, "not found"),
        (SeqSmoothingConfig, {"reward": "rouge"}, "valid: bleu, cider, edit, hamming"),
        (SeqSmoothingConfig, {"sub_vocab": "vocab"}, "sub_vocab"),
        (SeqSmoothingConfig, {"num_samples": 0}, "num_samples"),
        (TokSeqConfig, {"alpha2": -0.1}, "alpha2"),
        (TokSeqConfig, {"divergence": "js"}, "divergence"),
        (EntropyRegConfig, {"gamma": -1.0}, "gamma"),
    ],
)
def test_config_errors(cfg_cls, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        cfg_cls(**kwargs)


def test_reward_tau_defaults():
    assert SeqSmoothingConfig(reward="hamming", proposal_tau=0.3).effective_reward_tau == 0.3
    assert SeqSmoothingConfig(reward="bleu").effective_reward_tau == 0.02
    assert SeqSmoothingConfig(reward="bleu", reward_tau=0.5).effective_reward_tau == 0.5


def test_cross_entropy_helper_is_independent_of_searnn(setup):
    """Guard for the reference: F.cross_entropy agrees with the hand-written CE above."""
    _, model, batch = setup
    logits = model(batch.src, batch.src_len, batch.decoder_input)
    mask = batch.tgt_mask
    ce = F.cross_entropy(logits[mask], batch.tgt[mask])
    assert torch.allclose(ce, reference_ce(model, batch, "cell-global"), atol=1e-6)


@pytest.mark.parametrize("attention", ["none", "additive"])
def test_with_the_package_seq2seq(attention):
    """Lazy == full on the package's encoder-decoder too; the model similarity reads its output layer."""
    models = pytest.importorskip("searnn.models")
    task = make_task(seed=3)
    torch.manual_seed(3)
    cfg = models.ModelConfig(hidden=16, emb_dim=16, tgt_emb_dim=16, attention=attention)
    model = models.Seq2Seq(cfg, [len(task.tgt_vocab)], None, len(task.tgt_vocab)).eval()
    batch = collate(task.train[:8], list(range(8)))
    common = {"alpha1": 0.5, "alpha2": 0.5, "similarity": "model", "proposal_tau": 1e-4, "reward": "bleu"}
    lazy = TokSeq(TokSeqConfig(lazy=True, **common), task)(model, batch)
    full = TokSeq(TokSeqConfig(lazy=False, **common), task)(model, batch)
    assert torch.allclose(lazy.loss, full.loss, atol=1e-5)


def _top1_brute_force(top1, tokens, mask, neighbours_of):
    """Loop over cells: fractions of masked cells with top-1 != reference, and with it a neighbour too."""
    wrong = near = cells = 0
    for b in range(tokens.shape[0]):
        for t in range(tokens.shape[1]):
            if not mask[b, t]:
                continue
            cells += 1
            ref, guess = int(tokens[b, t]), int(top1[b, t])
            if guess != ref:
                wrong += 1
                near += guess in neighbours_of(ref)
    return wrong / max(cells, 1), near / max(cells, 1)


@pytest.mark.parametrize("similarity", ["train", "uniform"])
def test_top1_neighbour_rate_equals_a_loop_over_cells(setup, similarity):
    task, model, batch = setup
    cfg = TokenSmoothingConfig(alpha=0.4, tok_tau=0.3, similarity=similarity, top_k=4)
    obj = TokenSmoothing(cfg, task)
    out = obj(model, batch)
    sm = obj.smoother
    top1 = model(batch.src, batch.src_len, batch.decoder_input).argmax(-1)
    g = torch.Generator().manual_seed(1)
    # half of the cells forced onto a random token, so that both kinds of error occur
    noisy = torch.where(torch.rand(top1.shape, generator=g) < 0.5,
                        torch.randint(0, len(task.tgt_vocab), top1.shape, generator=g), top1)
    if similarity == "uniform":
        def neighbours_of(ref):
            return set(range(len(task.tgt_vocab))) - set(sm.uniform_excluded)
    else:
        def neighbours_of(ref):
            return set(sm.sim.indices[ref].tolist())
    for guess in (top1, noisy, batch.tgt):
        wrong, near = _top1_brute_force(guess, batch.tgt, batch.tgt_mask, neighbours_of)
        logs = sm.top1_stats(guess, batch.tgt, batch.tgt_mask)
        assert logs["tok_top1_wrong"] == pytest.approx(wrong) and logs["tok_top1_neighbour"] == pytest.approx(near)
    wrong, near = _top1_brute_force(top1, batch.tgt, batch.tgt_mask, neighbours_of)
    assert out.logs["tok_top1_neighbour"] == pytest.approx(near) and out.logs["tok_top1_wrong"] == pytest.approx(wrong)


@pytest.mark.parametrize("lazy", [True, False])
def test_tok_seq_logs_the_top1_neighbour_rate_of_the_ground_truth_cells(setup, lazy):
    task, model, batch = setup
    obj = TokSeq(TokSeqConfig(alpha1=0.5, alpha2=0.3, similarity="train", top_k=4, lazy=lazy), task)
    out = obj(model, batch)
    top1 = model(batch.src, batch.src_len, batch.decoder_input).argmax(-1)
    sm = obj.core.smoother
    wrong, near = _top1_brute_force(top1, batch.tgt, batch.tgt_mask, lambda ref: set(sm.sim.indices[ref].tolist()))
    assert out.logs["tok_top1_neighbour"] == pytest.approx(near) and out.logs["tok_top1_wrong"] == pytest.approx(wrong)
