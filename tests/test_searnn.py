"""The SeaRNN objective: config, equivalence with MLE, target alignment, gradients, logging."""

from __future__ import annotations

import dataclasses
import random

import pytest
import torch

from searnn.data.batch import Example, collate
from searnn.data.task import TaskData
from searnn.data.vocab import EOS_ID, Vocab
from searnn.errors import ConfigError
from searnn.models import ModelConfig, Seq2Seq
from searnn.objectives.base import NORMALIZATIONS, normalize
from searnn.objectives.cost_sensitive import LOSSES, min_cost_mask
from searnn.objectives.mle import MleConfig, MleObjective
from searnn.objectives.searnn import SearnnConfig, SearnnObjective
from searnn.search.exploration import SAMPLERS

WORDS = Vocab([f"w{i}" for i in range(8)])  # V = 12
TAGS = Vocab(["O", "B-NP", "I-NP", "B-VP", "I-VP"])
SRC_V = 12


def make_task(fixed: bool, vocab: Vocab = WORDS, cost: str = "hamming", n: int = 24, seed: int = 0, copy: bool = False):
    """A toy task: random sources of ids 4..11; targets random (or a copy of the source)."""
    rng = random.Random(seed)
    examples = []
    for _ in range(n):
        length = rng.randint(1, 6)
        src = [rng.randrange(4, SRC_V) for _ in range(length if fixed or copy else rng.randint(1, 6))]
        tgt = [min(s, len(vocab) - 1) for s in src] if copy else [rng.randrange(4, len(vocab)) for _ in range(length)]
        examples.append(Example([[s] for s in src], tgt))
    return TaskData(
        name="toy", train=examples, valid=[], test=[], tgt_vocab=vocab, src_vocabs=[WORDS], src_feature_dim=None,
        fixed_length=fixed, metric="hamming", cost=cost, lower_is_better=True,
        parse_source=lambda line: [[0]], format_output=lambda ids: "",
    )


def make_model(vocab: Vocab = WORDS, seed: int = 0, **kw) -> Seq2Seq:
    torch.manual_seed(seed)
    opts = dict(emb_dim=8, hidden=16, tgt_emb_dim=8, attention="additive")
    opts.update(kw)
    return Seq2Seq(ModelConfig(**opts), [SRC_V], None, len(vocab))


# ----------------------------------------------------------------------------------- config
def test_config_fields_have_help_and_defaults_validate() -> None:
    cfg = SearnnConfig()
    for f in dataclasses.fields(cfg):
        assert f.metadata.get("help"), f.name
    defaults = (cfg.rollin, cfg.rollout, cfg.searnn_loss, cfg.sample_tokens, cfg.num_tokens)
    assert defaults == ("learned", "mixed", "kl", "all", 5)
    assert SearnnObjective.config_class is SearnnConfig


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(rollin="dagger"), "valid: .*mixed-cell"),
        (dict(rollout="beam"), "valid: .*learned"),
        (dict(rollin_schedule="cosine"), "valid: .*sigmoid"),
        (dict(searnn_loss="svm"), "valid: .*hinge"),
        (dict(sample_tokens="gt"), "valid: .*topk"),
        (dict(mix_per="cell"), "valid: .*rollout"),
        (dict(cost="gleu"), "valid: .*bleu"),
        (dict(normalization="tokens"), "valid: .*cell-global"),
        (dict(rollin_ref_prob=1.5), "rollin_ref_prob"),
        (dict(rollout_ref_prob=-0.1), "rollout_ref_prob"),
        (dict(num_tokens=0), "num_tokens"),
        (dict(num_cells=-1), "num_cells"),
        (dict(bias_temperature=0.5), "bias_temperature"),
        (dict(kl_scale=-1.0), "kl_scale"),
        (dict(rollout_batch_size=0), "rollout_batch_size"),
        (dict(max_len_ratio=0.5), "max_len_ratio"),
    ],
)
def test_config_errors(kw: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        SearnnConfig(**kw)


# ----------------------------------------------------------------------------------- MLE equivalence
@pytest.mark.parametrize("normalization", NORMALIZATIONS)
@pytest.mark.parametrize("fixed,cost", [(True, "hamming"), (False, "hamming"), (False, "edit")])
def test_reference_rollin_rollout_ll_equals_mle(normalization: str, fixed: bool, cost: str) -> None:
    """Paper App. C.1: reference roll-in and roll-out, Hamming, LL over every token == MLE."""
    task = make_task(fixed, cost=cost)
    batch = collate(task.train[:8])
    model = make_model()
    cfg = SearnnConfig(
        rollin="reference", rollout="reference", searnn_loss="ll", cost=cost, normalization=normalization
    )
    searnn_out = SearnnObjective(cfg, task)(model, batch)
    grads = torch.autograd.grad(searnn_out.loss, list(model.parameters()), allow_unused=True)
    mle_out = MleObjective(MleConfig(normalization=normalization), task)(model, batch)
    mle_grads = torch.autograd.grad(mle_out.loss, list(model.parameters()), allow_unused=True)
    assert float(searnn_out.loss.detach()) == float(mle_out.loss.detach())
    assert searnn_out.denom == mle_out.denom
    for g, h in zip(grads, mle_grads, strict=True):
        if g is None or h is None:
            assert g is None and h is None
        else:
            torch.testing.assert_close(g, h)
    assert searnn_out.logs["rollin_cost"] == 0.0


@pytest.mark.parametrize(
    "fixed,vocab,cost",
    [(True, WORDS, "hamming"), (False, WORDS, "edit"), (False, WORDS, "bleu"), (True, TAGS, "f1")],
)
def test_reference_rollin_rollout_min_cost_token_is_the_ground_truth(fixed: bool, vocab: Vocab, cost: str) -> None:
    """docs/METHODS.md §7.1: with reference roll-in and roll-out, every cell's min-cost token is the GT token of
    that cell (and the loss's target is it)."""
    task = make_task(fixed, vocab=vocab, cost=cost)
    batch = collate(task.train[:12])
    obj = SearnnObjective(SearnnConfig(rollin="reference", rollout="reference"), task)
    res = obj.search(make_model(vocab), batch)
    assert torch.equal(res.cell_mask, batch.tgt_mask)
    gt = torch.where(batch.tgt_mask, batch.tgt, torch.full_like(batch.tgt, EOS_ID))
    is_min = min_cost_mask(res.costs.flatten(0, 1)).view_as(res.costs)
    cells = res.cell_mask
    assert is_min.gather(2, gt[:, :, None]).squeeze(2)[cells].all()
    assert (res.costs.gather(2, gt[:, :, None]).squeeze(2)[cells] == 0).all()
    if cost in ("hamming", "edit"):
        assert (is_min.sum(-1)[cells] == 1).all()  # strictly better than every other token


def test_converged_mle_model_has_small_searnn_kl_loss_with_learned_rollin() -> None:
    """docs/METHODS.md §7.1: targets and cells are aligned, so a model trained to (near) zero MLE loss on a copy
    task is also near the optimum of SeaRNN-KL with learned roll-in and mixed roll-out."""
    task = make_task(True, n=32, copy=True, seed=3)
    batch = collate(task.train)
    model = make_model(seed=1, hidden=32)
    mle = MleObjective(MleConfig(), task)
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    for _ in range(150):
        loss = mle(model, batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.05
    torch.manual_seed(0)
    out = SearnnObjective(SearnnConfig(searnn_loss="kl", kl_scale=100.0), task)(model, batch)
    assert float(out.loss.detach()) < 0.1
    assert out.logs["argmax_is_min"] > 0.95
    assert out.logs["rollin_cost"] < 0.05


# ----------------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("loss", list(LOSSES))
def test_gradients_reach_only_the_rollin_logits(loss: str) -> None:
    task = make_task(False, cost="edit")
    batch = collate(task.train[:6])
    model = make_model(dropout=0.0)
    obj = SearnnObjective(
        SearnnConfig(searnn_loss=loss, sample_tokens="topk", num_tokens=3, num_cells=1, kl_scale=5.0), task
    )
    torch.manual_seed(0)
    res = obj.search(model, batch)
    assert res.costs.grad_fn is None and not res.costs.requires_grad
    assert res.rollin.logits.requires_grad
    _, total, _ = obj.loss_from(res)
    params = list(model.parameters())
    grads = torch.autograd.grad(total, params + [res.rollin.logits], retain_graph=True, allow_unused=True)
    logit_grad = grads[-1]
    # no gradient on cells that were not rolled out, nor on tokens that were not
    assert (logit_grad[~res.cell_mask] == 0).all()
    assert (logit_grad[torch.isinf(res.costs)] == 0).all()
    # the same loss written directly from the logits with explicitly detached costs
    logits = res.rollin.logits.float()
    b, t, v = logits.shape
    manual = LOSSES[loss](
        logits.reshape(-1, v), res.costs.detach().clone().reshape(-1, v), scale=obj.scale,
        prefer=res.reference.reshape(-1),
    ).view(b, t)
    manual_total, _ = normalize(manual, res.cell_mask, obj.config.normalization)
    manual_grads = torch.autograd.grad(manual_total, params, allow_unused=True)
    assert float(total.detach()) == float(manual_total.detach())
    for g, h in zip(grads[:-1], manual_grads, strict=True):
        if g is None or h is None:
            assert g is None and h is None
        else:
            torch.testing.assert_close(g, h)


# ----------------------------------------------------------------------------------- every variant runs
@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("loss", list(LOSSES))
def test_every_loss_and_sampler_gives_a_finite_loss_and_logs(sampler: str, loss: str) -> None:
    task = make_task(False, cost="bleu")
    batch = collate(task.train[:5])
    model = make_model()
    model.train()
    obj = SearnnObjective(SearnnConfig(searnn_loss=loss, sample_tokens=sampler, num_tokens=2, gt_neighbors=1), task)
    out = obj(model, batch)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    for key in ("rollin_cost", "argmax_is_min", "rollouts", "rollout_steps", "rollouts_per_s"):
        assert key in out.logs and isinstance(out.logs[key], float)
    assert model.training


def test_sampled_tokens_per_cell() -> None:
    """reference token + EOS (variable length) + gt_neighbors window + num_tokens drawn."""
    task = make_task(False, cost="edit", seed=2)
    batch = collate(task.train[:8])
    obj = SearnnObjective(SearnnConfig(sample_tokens="uniform", num_tokens=3, rollin="reference"), task)
    res = obj.search(make_model(), batch)
    sampled = torch.isfinite(res.costs)
    cells = res.cell_mask
    gt = torch.where(batch.tgt_mask, batch.tgt, torch.full_like(batch.tgt, EOS_ID))
    assert sampled.gather(2, gt[:, :, None]).squeeze(2)[cells].all()
    assert sampled[..., EOS_ID][cells].all()
    n = sampled.sum(-1)[cells]
    forced = 1 + (gt != EOS_ID)[cells].long()  # EOS plus the reference token when it is not EOS
    assert torch.equal(n, forced + 3)
    assert not sampled[~cells].any()


def test_schedule_lowers_the_rollin_reference_probability() -> None:
    task = make_task(True)
    obj = SearnnObjective(SearnnConfig(rollin="mixed", rollin_ref_prob=0.8, rollin_schedule="linear"), task)
    batch = collate(task.train[:4])
    model = make_model()
    obj.start_epoch(0, 2)
    assert obj.current_rollin_ref_prob() == pytest.approx(0.8)
    for _ in range(2):
        obj(model, batch)
    obj.start_epoch(1, 2)
    assert obj.current_rollin_ref_prob() == pytest.approx(0.4)
    obj(model, batch)
    assert obj.current_rollin_ref_prob() == pytest.approx(0.2)
    state = obj.state_dict()
    again = SearnnObjective(obj.config, task)
    again.load_state_dict(state)
    assert again.progress.steps_per_epoch == 2


# ----------------------------------------------------------------------------------- SeaRNN + Tok
@pytest.mark.parametrize("similarity", ["uniform", "train"])
@pytest.mark.parametrize("fixed", [True, False])
def test_searnn_tok_with_reference_search_equals_token_smoothing(similarity: str, fixed: bool) -> None:
    """Reference roll-in/out + Hamming + LL is MLE (App. C.1), so SeaRNN+Tok there must equal token
    smoothing with the same weight: same loss, same gradients."""
    from searnn.objectives.searnn_tok import SearnnTok, SearnnTokConfig
    from searnn.objectives.token_smoothing import TokenSmoothing, TokenSmoothingConfig

    task = make_task(fixed, n=24)
    batch = collate(task.train[:8])
    model = make_model()
    tok = dict(similarity=similarity, tok_tau=0.5, top_k=4, train_dim=4)
    combined = SearnnTok(
        SearnnTokConfig(rollin="reference", rollout="reference", searnn_loss="ll", cost="hamming", tok_alpha=0.4,
                        **tok), task,
    )(model, batch)
    plain = TokenSmoothing(TokenSmoothingConfig(alpha=0.4, **tok), task)(model, batch)
    torch.testing.assert_close(combined.loss, plain.loss)
    g1 = torch.autograd.grad(combined.loss, list(model.parameters()), allow_unused=True)
    g2 = torch.autograd.grad(plain.loss, list(model.parameters()), allow_unused=True)
    for g, h in zip(g1, g2, strict=True):
        if g is None or h is None:
            assert g is None and h is None
        else:
            torch.testing.assert_close(g, h)
    assert "tok_self_mass" in combined.logs and "argmax_is_min" in combined.logs


@pytest.mark.parametrize("loss", ["kl", "ll"])
def test_searnn_tok_with_zero_weight_is_searnn(loss: str) -> None:
    from searnn.objectives.searnn_tok import SearnnTok, SearnnTokConfig

    task = make_task(False, cost="edit")
    batch = collate(task.train[:8])
    model = make_model()
    opts = dict(rollin="learned", rollout="mixed", searnn_loss=loss, sample_tokens="topk", num_tokens=3)
    torch.manual_seed(5)
    a = SearnnTok(SearnnTokConfig(tok_alpha=0.0, similarity="uniform", **opts), task)(model, batch)
    torch.manual_seed(5)
    b = SearnnObjective(SearnnConfig(**opts), task)(model, batch)
    assert float(a.loss.detach()) == float(b.loss.detach())
    with pytest.raises(ConfigError, match="tok_alpha"):
        SearnnTokConfig(tok_alpha=1.5)
