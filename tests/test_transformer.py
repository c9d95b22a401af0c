"""The Transformer encoder-decoder: the SeaRNN engine against the naive per-candidate loop, beam 1 = greedy,
its key/value cache, its options, and a tiny ``searnn train --arch transformer`` for every objective."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import test_search_engine as engine_tests
from searnn.cli import main
from searnn.config import build_config
from searnn.data.vocab import EOS_ID
from searnn.decoding import beam_search, greedy
from searnn.errors import ConfigError
from searnn.models import ModelConfig
from searnn.models.transformer import Transformer, TransformerState
from searnn.objectives import OBJECTIVES

RNN_CASE = engine_tests.make_case  # captured before any monkeypatch

# cost -> transformer options of the naive-loop case (sources and vocabularies as in test_search_engine)
OPTIONS = {
    "hamming": dict(),
    "edit": dict(enc_layers=2, dec_layers=2),
    "bleu": dict(tie_embeddings=True),
    "f1": dict(aligned_input=True),
}


def transformer_case(cost_name: str, batch_size: int = 4, seed: int = 0):
    """test_search_engine.make_case with a Transformer on the same batch, sources and vocabulary."""
    model, batch, cost, fixed = RNN_CASE(cost_name, batch_size, seed)
    features = batch.src.dtype.is_floating_point
    torch.manual_seed(seed)
    cfg = ModelConfig(arch="transformer", hidden=12, heads=2, ffn_dim=16, **OPTIONS[cost_name])
    tf = Transformer(cfg, [] if features else [engine_tests.SRC_VOCAB], engine_tests.FEATS if features else None,
                     model.tgt_vocab_size)
    if not features:
        tf = tf.double()  # argmax decisions cannot flip on rounding
    with torch.no_grad():
        tf.out.bias[EOS_ID] = 0.1  # EOS a plausible greedy choice
    return tf, batch, cost, fixed


@pytest.mark.parametrize(
    "cost_name,rollin,rollout",
    [("hamming", "learned", "learned"), ("hamming", "mixed-cell", "mixed"), ("edit", "reference", "learned"),
     ("bleu", "mixed-cell", "mixed"), ("f1", "learned", "learned")],
)
def test_engine_equals_naive_loop_on_a_transformer(monkeypatch, cost_name: str, rollin: str, rollout: str) -> None:
    """The engine's cost tensor equals the per-candidate loop of tests/test_search_engine.py (fresh encoding,
    one row, step by step from BOS, plain costs) with the Transformer in place of the RNN."""
    monkeypatch.setattr(engine_tests, "make_case", transformer_case)
    engine_tests.test_engine_equals_naive_reference(cost_name, rollin, rollout)


@pytest.mark.parametrize("fixed", [False, True])
def test_beam_one_equals_greedy(fixed: bool) -> None:
    torch.manual_seed(0)
    model = Transformer(ModelConfig(arch="transformer", hidden=16, heads=2, ffn_dim=24), [9], None, 11).eval()
    src = torch.randint(4, 9, (5, 6, 1))
    src_len = torch.tensor([6, 2, 5, 3, 4])
    with torch.no_grad():
        model.out.bias[EOS_ID] = 2.0
        enc = model.encode(src, src_len)
        budget = src_len.clone() if fixed else 2 * src_len + 3
        g = greedy(model, enc, model.init_state(enc), budget, fixed)
        b = beam_search(model, enc, model.init_state(enc), 1, budget, fixed)
    assert torch.equal(g[1], b[1])
    for row in range(5):
        n = int(g[1][row])
        assert g[0][row, :n].tolist() == b[0][row, :n].tolist()
    assert bool((g[1] < budget).any()) or fixed  # some rows stopped on EOS


def test_cache_rows_branch_and_concatenate() -> None:
    """index repeats cache rows; cat pads caches of different widths with invalid columns, and a row steps to
    the same logits whatever the padding."""
    torch.manual_seed(0)
    model = Transformer(ModelConfig(arch="transformer", hidden=8, heads=2, ffn_dim=8), [9], None, 11).eval()
    src, src_len = torch.randint(4, 9, (2, 3, 1)), torch.tensor([3, 2])
    with torch.no_grad():
        enc = model.encode(src, src_len)
        short = model.init_state(enc)
        _, short = model.step(enc, short, torch.tensor([1, 1]))
        _, long = model.step(enc, short, torch.tensor([5, 6]))
        joined = TransformerState.cat([short, long])
        assert joined.width == 2 and joined.valid.tolist() == [[True, False], [True, False],
                                                                      [True, True], [True, True]]
        tokens = torch.tensor([7, 8, 7, 8])
        a, _ = model.step(enc, joined, tokens)
        b0, _ = model.step(enc, short, tokens[:2])
        b1, _ = model.step(enc, long, tokens[2:])
        torch.testing.assert_close(a, torch.cat([b0, b1]), atol=1e-5, rtol=1e-5)
        branched = long.index(torch.tensor([1, 1, 0]))
        assert torch.equal(branched.cache()[0][:, 0], long.cache()[0][:, 1])
        assert branched.batch_idx.tolist() == [1, 1, 0]


def test_transformer_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="--heads and --hidden must divide evenly"):
        build_config({"task": "ocr", "arch": "transformer", "hidden": 10, "heads": 4})
    with pytest.raises(ConfigError, match="unknown --arch 'cnn'"):
        build_config({"task": "ocr", "arch": "cnn"})
    with pytest.raises(ConfigError, match="--ffn-dim must be >= 1"):
        build_config({"task": "ocr", "arch": "transformer", "ffn_dim": 0})
    cfg = build_config({"task": "ocr", "arch": "transformer", "heads": 2, "tie_embeddings": True})
    assert cfg.model.arch == "transformer" and cfg.model.heads == 2


TINY = ["--arch", "transformer", "--hidden", "16", "--heads", "2", "--ffn-dim", "24", "--epochs", "1",
        "--progress", "false", "--batch-size", "8"]
OBJECTIVE_OPTIONS = {
    "searnn": ["--sample-tokens", "uniform", "--num-tokens", "3"],
    "searnn-tok": ["--sample-tokens", "uniform", "--num-tokens", "3", "--similarity", "uniform"],
    "token-smoothing": ["--similarity", "train"],
    "tok-seq": ["--similarity", "train"],
}


def tiny_tsv(tmp_path) -> list[str]:
    lines = ["abc\tcba", "hello\tolleh", "rnn\tnnr", "search\thcraes", "learn\tnrael", "token\tnekot",
             "beam\tmaeb", "cell\tllec"]
    for name in ("train", "valid", "test"):
        (tmp_path / f"{name}.tsv").write_text("\n".join(lines) + "\n")
    return ["--task", "tsv", "--train", str(tmp_path / "train.tsv"), "--valid", str(tmp_path / "valid.tsv"),
            "--test", str(tmp_path / "test.tsv"), "--tokenize", "char", "--metric", "edit"]


@pytest.mark.parametrize("objective", sorted(OBJECTIVES))
def test_train_a_transformer_with_every_objective(tmp_path, capsys, objective: str) -> None:
    run_dir = tmp_path / "run"
    args = ["train", *tiny_tsv(tmp_path), "--objective", objective, "--run-dir", str(run_dir), *TINY,
            *OBJECTIVE_OPTIONS.get(objective, [])]
    assert main(args) == 0
    results = json.loads((run_dir / "results.json").read_text())
    assert results["config"]["model"]["arch"] == "transformer"
    assert isinstance(results["test"]["edit"], float)
    capsys.readouterr()
    assert main(["evaluate", str(run_dir), "--split", "test"]) == 0  # rebuilt from the saved config
    assert json.loads(capsys.readouterr().out)["edit"] == pytest.approx(results["test"]["edit"])


@pytest.mark.parametrize("task,extra", [("translation", ["--objective", "searnn", "--sample-tokens", "uniform",
                                                         "--num-tokens", "2", "--limit-valid", "8"]),
                                        ("ocr", ["--objective", "mle", "--limit-valid", "8"])])
def test_train_and_predict_a_transformer_on_shipped_tasks(tmp_path, capsys, monkeypatch, task, extra) -> None:
    import io

    run_dir = tmp_path / task
    assert main(["train", "--task", task, "--limit-train", "16", "--run-dir", str(run_dir), *TINY, *extra]) == 0
    line = "ein mann ." if task == "translation" else " ".join(["0"] * 128)
    monkeypatch.setattr("sys.stdin", io.StringIO(line + "\n"))
    capsys.readouterr()
    assert main(["predict", str(run_dir)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1


def test_in_place_cache_keeps_states_immutable() -> None:
    """Without autograd a step writes into spare cache capacity; stepping an older state or a sibling again
    must not change what the newer states hold (each compared with a decode from scratch)."""
    torch.manual_seed(0)
    model = Transformer(ModelConfig(arch="transformer", hidden=8, heads=2, ffn_dim=8), [9], None, 11).eval()
    src, src_len = torch.randint(4, 9, (2, 3, 1)), torch.tensor([3, 2])

    def fresh(tokens: list[list[int]]) -> torch.Tensor:
        state = model.init_state(enc)
        for col in zip(*tokens, strict=True):
            logits, state = model.step(enc, state, torch.tensor(col))
        return logits

    with torch.no_grad():
        enc = model.encode(src, src_len)
        _, s0 = model.step(enc, model.init_state(enc), torch.tensor([1, 1]))
        _, s1 = model.step(enc, s0, torch.tensor([5, 6]))  # owns the next column of s0's buffer
        _, s2 = model.step(enc, s0, torch.tensor([7, 8]))  # a sibling: must copy
        _, s3 = model.step(enc, s0.head(1), torch.tensor([9]))  # a view of s0's rows: must copy too
        assert s1.fill is not None and s1.keys.shape[3] > s1.width  # spare capacity in use
        l1, _ = model.step(enc, s1, torch.tensor([4, 4]))
        l2, _ = model.step(enc, s2, torch.tensor([4, 4]))
        l3, _ = model.step(enc, s3, torch.tensor([4]))
        torch.testing.assert_close(l1, fresh([[1, 5, 4], [1, 6, 4]]), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(l2, fresh([[1, 7, 4], [1, 8, 4]]), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(l3, fresh([[1, 9, 4], [1, 9, 4]])[:1], atol=1e-5, rtol=1e-5)


def test_shared_step_branches_the_cache_in_one_copy() -> None:
    """``step_shared`` (rows branching from shared states) gathers the rows straight into a buffer with spare
    capacity: its state equals ``step(state.index(rows))`` exactly, later steps write in place, and the
    source state is untouched."""
    torch.manual_seed(0)
    model = Transformer(ModelConfig(arch="transformer", hidden=8, heads=2, ffn_dim=8), [9], None, 11).eval()
    src, src_len = torch.randint(4, 9, (2, 3, 1)), torch.tensor([3, 2])
    rows, tokens = torch.tensor([1, 0, 1, 1]), torch.tensor([5, 6, 7, 8])
    with torch.no_grad():
        enc = model.encode(src, src_len)
        _, s0 = model.step(enc, model.init_state(enc), torch.tensor([1, 1]))
        _, s0 = model.step(enc, s0, torch.tensor([4, 6]))
        before = [t.clone() for t in s0.cache()]
        shared_logits, shared = model.step_shared(enc, s0, tokens, rows)
        plain_logits, plain = model.step(enc, s0.index(rows), tokens)
        assert torch.equal(shared_logits, plain_logits)
        for a, b in zip(shared.cache(), plain.cache(), strict=True):
            assert torch.equal(a, b)
        assert torch.equal(shared.valid, plain.valid) and torch.equal(shared.pos, plain.pos)
        assert shared.fill == [shared.width] and shared.keys.shape[3] > shared.width  # room for the next step
        ptr = shared.keys.data_ptr()
        next_shared, after = model.step(enc, shared, torch.tensor([4, 4, 4, 4]))
        next_plain, _ = model.step(enc, plain, torch.tensor([4, 4, 4, 4]))
        assert after.keys.data_ptr() == ptr  # written in place
        assert torch.equal(next_shared, next_plain)
        for a, b in zip(s0.cache(), before, strict=True):
            assert torch.equal(a, b)


def test_transformer_grids_validate(tmp_path, monkeypatch, capsys) -> None:
    """Every run of the prepared Transformer grids is a valid configuration (part 2 waits for part 1's MLE)."""
    grids = Path(__file__).resolve().parents[1] / "configs" / "experiments"
    monkeypatch.chdir(tmp_path)  # runs/ (and the warm-start sources) relative to an empty directory
    assert main(["experiment", str(grids / "transformer.yaml"), "--dry-run"]) == 0
    capsys.readouterr()
    for grid, row in (("transformer_searnn_mt.yaml", "mt-mle"), ("transformer_searnn_ocr.yaml", "ocr-mle")):
        assert main(["experiment", str(grids / grid), "--dry-run"]) == 1
        assert f"warm_start 'runs/transformer/{row}/seed1' does not exist" in capsys.readouterr().out


def test_transformer_benchmark_runs() -> None:
    """benchmarks/bench_transformer.py runs end to end on one small batch (it prints figures; nothing is timed)."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "bench_transformer.py"), "--batches", "1", "--batch-size", "4",
         "--hidden", "16", "--heads", "2", "--ffn-dim", "16", "--layers", "1"],
        capture_output=True, text=True, timeout=300, cwd=root,
    )
    assert done.returncode == 0, done.stderr
    assert "engine roll-outs:" in done.stdout and "bare loop:" in done.stdout


def test_positions_beyond_the_table() -> None:
    """Sources and decodes longer than the 512-row position table grow it (same values, the model's dtype)."""
    torch.manual_seed(0)
    model = Transformer(ModelConfig(arch="transformer", hidden=8, heads=2, ffn_dim=8), [9], None, 11).double().eval()
    src, src_len = torch.randint(4, 9, (1, 600, 1)), torch.tensor([600])
    with torch.no_grad():
        enc = model.encode(src, src_len)
    assert model.positions.shape[0] >= 600 and model.positions.dtype == torch.float64
    assert torch.isfinite(enc.memory).all()
