"""The public API: loss objects equal the objectives they wrap, options and their errors, costs and metrics on
plain lists, searnn.decode, and a light ``import searnn``."""

from __future__ import annotations

import dataclasses
import inspect
import subprocess
import sys

import pytest
import torch

import searnn
from searnn import api
from searnn.costs import make_cost
from searnn.data.batch import Example, collate
from searnn.data.task import TaskData
from searnn.data.vocab import Vocab
from searnn.errors import ConfigError
from searnn.models import ModelConfig, Seq2Seq
from searnn.objectives import OBJECTIVES
from searnn.objectives.searnn import SearnnConfig
from searnn.objectives.token_smoothing import TokenSmoothingConfig

VOCAB = Vocab(list("abcdefgh"))  # 12 ids


def examples() -> list[Example]:
    return [Example([[4], [5], [6]], [4, 5, 6]), Example([[7], [8]], [8, 7]), Example([[9]], [10])]


def model() -> Seq2Seq:
    torch.manual_seed(0)
    return Seq2Seq(ModelConfig(emb_dim=8, hidden=12, tgt_emb_dim=8, attention="additive"), [12], None, len(VOCAB))


def user_tensors():
    """The batch of examples() as the API takes it: tgt without EOS."""
    src = torch.tensor([[[4], [5], [6]], [[7], [8], [0]], [[9], [0], [0]]])
    tgt = torch.tensor([[4, 5, 6], [8, 7, 0], [10, 0, 0]])
    return src, torch.tensor([3, 2, 1]), tgt, torch.tensor([3, 2, 1])


def task() -> TaskData:
    return api.minimal_task(VOCAB, False, "edit", [e.tgt for e in examples()])


def test_make_batch_equals_collate() -> None:
    """The EOS convention: the API's tgt has no EOS; its batch is what collate builds from examples."""
    batch = api.make_batch(*user_tensors())
    expected = collate(examples())
    for name in ("src", "src_len", "tgt", "tgt_len"):
        assert torch.equal(getattr(batch, name), getattr(expected, name)), name


@pytest.mark.parametrize(
    "cls,options",
    [(searnn.SearnnLoss, dict(cost="edit", rollin="learned", rollout="reference")),
     (searnn.TokenSmoothingLoss, dict(similarity="train", alpha=0.3)),
     (searnn.TokSeqLoss, dict(similarity="train", reward="hamming")),
     (searnn.MleLoss, {})],
)
def test_loss_object_equals_the_objective(cls, options) -> None:
    """Same loss (and gradient) as the registered objective on the same batch and a hand-built task."""
    m = model()
    loss = cls(VOCAB, train_targets=[e.tgt for e in examples()], **options)
    torch.manual_seed(5)
    out = loss(m, *user_tensors())
    out.loss.backward()
    grad = m.out.weight.grad.clone()
    m.zero_grad()
    config = OBJECTIVES[cls.objective].config_class(**options)
    objective = OBJECTIVES[cls.objective](config, task())
    torch.manual_seed(5)
    ref = objective(m, collate(examples()))
    ref.loss.backward()
    assert out.loss.item() == pytest.approx(ref.loss.item(), rel=1e-6)
    torch.testing.assert_close(grad, m.out.weight.grad)


@pytest.mark.parametrize("cls,config", [(searnn.SearnnLoss, SearnnConfig), (searnn.TokenSmoothingLoss,
                                                                            TokenSmoothingConfig)])
def test_every_option_is_a_keyword_with_the_same_default(cls, config) -> None:
    params = inspect.signature(cls).parameters
    for f in dataclasses.fields(config):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        assert params[f.name].default == default, f.name
        assert cls.options()[f.name] == default
    assert cls().config == config()


def test_unknown_and_bad_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown option 'rollinn'; valid: .*rollin,"):
        searnn.SearnnLoss(rollinn="learned")
    with pytest.raises(ConfigError, match="rollin"):
        searnn.SearnnLoss(rollin="sideways")
    with pytest.raises(ConfigError, match="--rollin-ref-prob must be in"):
        searnn.SearnnLoss(rollin_ref_prob=2.0)
    with pytest.raises(ConfigError, match="unknown objective"):
        api.make_loss("nope")
    with pytest.raises(ConfigError, match="tgt_vocab_size is 12"):
        searnn.MleLoss(vocab=20)(model(), *user_tensors())


def test_vocabulary_size_comes_from_the_model() -> None:
    loss = searnn.SearnnLoss(cost="hamming", fixed_length=False)
    out = loss(model(), *user_tensors())
    assert torch.isfinite(out.loss) and len(loss.vocab) == 12
    assert "rollouts" in out.logs


def test_make_cost_by_size_and_on_lists() -> None:
    """make_cost takes a vocabulary size; sequence_cost scores lists against a brute-force Levenshtein."""
    cost = make_cost("edit", 12)
    hyps, refs = [[4, 5, 6], [7], []], [[4, 6], [7, 8, 9], [5]]

    def lev(a, b):
        d = list(range(len(b) + 1))
        for i, x in enumerate(a, 1):
            prev, d[0] = d[0], i
            for j, y in enumerate(b, 1):
                prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (x != y))
        return d[len(b)]

    got = searnn.sequence_cost(cost, hyps, refs).tolist()
    assert got == pytest.approx([lev(h, r) / len(r) for h, r in zip(hyps, refs, strict=True)])
    with pytest.raises(ConfigError, match="unknown cost"):
        make_cost("nope", 12)


def test_metric_on_lists() -> None:
    result = searnn.metric("edit", [[4, 5], [6]], [[4, 5], [7, 7]])
    assert result.value == pytest.approx(100 * 2 / 4)
    assert searnn.metric("cer", [[4, 5]], [[[4, 6]]]).value == pytest.approx(50.0)


def test_decode_greedy_and_beam_one_agree() -> None:
    m = model()
    src, src_len, _, _ = user_tensors()
    m.train()
    g = searnn.decode.greedy(m, src, src_len, max_len=6)
    b = searnn.decode.beam(m, src, src_len, beam_size=1, max_len=6)
    assert m.training  # mode restored
    assert searnn.decode.to_lists(*g) == searnn.decode.to_lists(*b)
    fixed = searnn.decode.greedy(m, src, src_len, fixed_length=True)
    assert fixed[1].tolist() == [3, 2, 1]


def test_import_searnn_is_light() -> None:
    code = "import sys, searnn; assert 'torch' not in sys.modules, 'torch imported'; print(searnn.__version__)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert set(["SearnnLoss", "make_cost", "check_model", "decode"]) <= set(dir(searnn))


def test_readme_python_api_snippet_runs() -> None:
    """The README's "Python API" code block runs as printed, with a user's model and a few batches."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    section = (root / "README.md").read_text().split("## Python API", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    sys.path.insert(0, str(root / "examples"))
    try:
        from own_model_searnn import TinySeq2Seq, reversal_data, tensors
    finally:
        sys.path.pop(0)
    pairs = reversal_data(32, seed=0)
    namespace = {"MyModel": TinySeq2Seq, "batches": [tensors(pairs[:16]), tensors(pairs[16:])]}
    exec(compile(code, "README.md", "exec"), namespace)
    assert len(code.strip().splitlines()) <= 12
