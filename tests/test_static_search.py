"""The static-shape search (searnn.search.static) against the dynamic engine, and its host synchronisations.

* Equivalence: with deterministic options (reference roll-in + reference roll-out, learned + learned) the static
  search gives the dynamic search's cost tensor (same +inf pattern, equal values) and the same loss, for every
  cost (Hamming on OCR-like features, edit and BLEU with attention models, chunk F1), every token or top-k, and
  with ``num_cells`` subsampling (same subset: the same random draws when the roll-in widths agree).
* No synchronisation: under :class:`searnn.syncguard.SyncGuard` the static search makes none, the dynamic search
  on the same input makes some (the guard is not vacuous).
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

import test_search_engine as engine_tests
from searnn.config import build_config
from searnn.data.batch import make_batches
from searnn.errors import ConfigError
from searnn.objectives.searnn import SearnnConfig
from searnn.search.engine import SearchOptions, search, use_static
from searnn.search.static import dense_candidates, host_cap
from searnn.syncguard import SyncGuard


def run_both(cost_name: str, seed: int = 0, **options):
    """(dynamic, static) SearchResults of one batch with the same options and the same random state."""
    model, batch, cost, fixed = engine_tests.make_case(cost_name, batch_size=5, seed=seed)
    results = []
    for mode in ("off", "on"):
        torch.manual_seed(seed + 1)
        opts = SearchOptions(static_shapes=mode, **options)
        results.append(search(model, batch, cost, fixed, opts))
    return results


def assert_same_costs(dynamic, static) -> None:
    t = dynamic.costs.shape[1]
    assert static.costs.shape[0] == dynamic.costs.shape[0] and static.costs.shape[2] == dynamic.costs.shape[2]
    assert static.costs.shape[1] >= t
    assert torch.isinf(static.costs[:, t:]).all() and not static.cell_mask[:, t:].any()
    head = static.costs[:, :t]
    finite = torch.isfinite(dynamic.costs)
    assert torch.equal(finite, torch.isfinite(head))
    assert torch.allclose(head[finite], dynamic.costs[finite], atol=1e-6, rtol=0)
    assert torch.equal(static.cell_mask[:, :t], dynamic.cell_mask)
    assert torch.allclose(static.rollin_cost, dynamic.rollin_cost, atol=1e-6, rtol=0)


DETERMINISTIC = [dict(rollin="reference", rollout="reference"), dict(rollin="learned", rollout="learned")]


@pytest.mark.parametrize("cost_name", list(engine_tests.SETUPS))
@pytest.mark.parametrize("policies", DETERMINISTIC, ids=["reference", "learned"])
@pytest.mark.parametrize("tokens", [dict(sample_tokens="all"), dict(sample_tokens="topk", num_tokens=2)],
                         ids=["all", "topk"])
def test_static_search_gives_the_dynamic_costs(cost_name, policies, tokens) -> None:
    dynamic, static = run_both(cost_name, **policies, **tokens)
    assert_same_costs(dynamic, static)


@pytest.mark.parametrize("cost_name", ["hamming", "edit", "bleu"])
@pytest.mark.parametrize("horizon", [1, 2])
def test_rollout_horizon_gives_the_dynamic_costs(cost_name, horizon) -> None:
    dynamic, static = run_both(cost_name, rollin="learned", rollout="learned", rollout_horizon=horizon)
    assert_same_costs(dynamic, static)
    assert float(static.stats["rollouts_cut"]) == dynamic.stats["rollouts_cut"] > 0


@pytest.mark.parametrize("sampler", ["uniform", "policy", "biased"])
def test_sampled_tokens_with_a_reference_rollin_are_the_same_draws(sampler) -> None:
    # a reference roll-in has the same width in both engines: the same Gumbel noise, the same tokens
    dynamic, static = run_both("edit", rollin="reference", rollout="learned", sample_tokens=sampler, num_tokens=2,
                               gt_neighbors=1)
    assert_same_costs(dynamic, static)


@pytest.mark.parametrize("cost_name", ["hamming", "edit"])
def test_num_cells_subsampling_picks_the_same_cells(cost_name) -> None:
    # a reference roll-in has T cells in both engines: the same draws pick the same cells
    dynamic, static = run_both(cost_name, rollin="reference", rollout="learned", num_cells=1, seed=3)
    assert_same_costs(dynamic, static)
    assert (dynamic.cell_mask.sum(1) < dynamic.rollin.cells).any()  # the subsampling did drop cells


def test_num_cells_with_a_learned_rollin_scores_its_cells_as_the_dynamic_engine() -> None:
    # widths may differ (no early exit), so the draws may differ: the chosen cells' costs must still be the
    # dynamic engine's costs of those cells (the dynamic engine rolling out every cell)
    model, batch, cost, fixed = engine_tests.make_case("edit", batch_size=5, seed=2)
    torch.manual_seed(0)
    static = search(model, batch, cost, fixed, SearchOptions(rollin="learned", rollout="learned", num_cells=1,
                                                             static_shapes="on"))
    full = search(model, batch, cost, fixed, SearchOptions(rollin="learned", rollout="learned", static_shapes="off"))
    t = full.costs.shape[1]
    chosen = static.cell_mask[:, :t]
    assert not static.cell_mask[:, t:].any()
    assert torch.equal(chosen & full.cell_mask, chosen)
    assert (chosen.sum(1) <= 3).all()  # one random cell + the last token cell + the EOS cell
    picked = static.costs[:, :t][chosen]
    assert torch.equal(torch.isfinite(picked), torch.isfinite(full.costs[chosen]))
    finite = torch.isfinite(picked)
    assert torch.allclose(picked[finite], full.costs[chosen][finite], atol=1e-6, rtol=0)
    assert torch.isinf(static.costs[:, :t][~chosen]).all()


@pytest.mark.parametrize("cost_name", ["hamming", "bleu"])
def test_static_search_gives_the_dynamic_loss(cost_name) -> None:
    from searnn.api import minimal_task
    from searnn.objectives.searnn import SearnnObjective

    vocab, fixed, _, _ = engine_tests.SETUPS[cost_name]
    model, batch, _, _ = engine_tests.make_case(cost_name, batch_size=5)
    task = minimal_task(vocab, fixed, cost_name, None)
    losses = []
    for tokens in ("all", "topk"):
        for mode in ("off", "on"):
            config = SearnnConfig(rollin="learned", rollout="learned", sample_tokens=tokens, num_tokens=2,
                                  static_shapes=mode)
            objective = SearnnObjective(config, task)
            out = objective(model, batch)
            losses.append(float(out.loss.detach()))
            assert isinstance(out.logs["rollouts"], float)
    assert losses[0] == pytest.approx(losses[1], abs=1e-6)
    assert losses[2] == pytest.approx(losses[3], abs=1e-6)


def test_dense_candidates_lists_the_chosen_tokens_in_order() -> None:
    torch.manual_seed(0)
    chosen = torch.rand(3, 4, 9) < 0.3
    slots = int(chosen.sum(-1).max()) + 1
    assert slots < 9
    tokens, valid = dense_candidates(chosen, slots)
    assert tokens.shape == (3, 4, slots)
    for i in range(3):
        for j in range(4):
            assert tokens[i, j][valid[i, j]].tolist() == chosen[i, j].nonzero().squeeze(1).tolist()
            assert not valid[i, j, int(chosen[i, j].sum()):].any()
    every, all_valid = dense_candidates(chosen, 9)  # A = V: the token ids themselves
    assert torch.equal(every, torch.arange(9).expand(3, 4, 9)) and torch.equal(all_valid, chosen)


@pytest.mark.parametrize("ref_tokens", [0, 1, 4, 7])
@pytest.mark.parametrize("fixed", [True, False])
def test_host_cap_is_the_device_cap(ref_tokens, fixed) -> None:
    from searnn.search.engine import output_cap

    cap = output_cap(torch.tensor([ref_tokens]), fixed, 1.5, 2)
    assert host_cap(ref_tokens, fixed, 1.5, 2) == int(cap[0])


# ----------------------------------------------------------------------------- host synchronisations
@pytest.mark.parametrize("cost_name", list(engine_tests.SETUPS))
@pytest.mark.parametrize("options", [
    dict(),  # learned roll-in, mixed roll-out, every token
    dict(sample_tokens="topk", num_tokens=2, rollin="mixed"),
    dict(rollin="mixed-cell", rollout="reference", num_cells=1, sample_tokens="policy", num_tokens=2),
    dict(rollout="learned", rollout_horizon=2, gt_neighbors=1, sample_tokens="biased", num_tokens=2),
], ids=["default", "topk-mixed", "mixed-cell", "horizon"])
def test_static_search_makes_no_host_synchronisation(cost_name, options) -> None:
    model, batch, cost, fixed = engine_tests.make_case(cost_name, batch_size=5)
    search(model, batch, cost, fixed, SearchOptions(static_shapes="on", **options))  # warm-up, as on a GPU
    with SyncGuard() as guard:
        search(model, batch, cost, fixed, SearchOptions(static_shapes="on", **options))
    assert not guard.events, guard.report()
    with SyncGuard() as dynamic:
        search(model, batch, cost, fixed, SearchOptions(static_shapes="off", **options))
    assert dynamic.events  # the same input, the dynamic engine: flagged


GPU_CONFIGS = [  # the configurations of tests/test_gpu.py, on the CPU
    {"objective": "searnn"},
    {"objective": "searnn", "sample_tokens": "topk", "num_tokens": 5, "rollin": "mixed"},
]


@pytest.mark.parametrize("objective", GPU_CONFIGS, ids=["default", "topk-mixed"])
def test_the_gpu_test_configurations_make_no_host_synchronisation(tmp_path, objective) -> None:
    from searnn.train import Trainer

    small = {"task": "ocr", "limit_train": 16, "limit_valid": 8, "epochs": 1, "batch_size": 8, "progress": False,
             "checkpoint_minutes": 0.0, "device": "cpu", "static_shapes": "on"}
    trainer = Trainer(build_config({**small, **objective, "run_dir": str(tmp_path / "run")}))
    batch = next(iter(make_batches(trainer.task.train, 8, shuffle=True, seed=1)))
    trainer.objective.search(trainer.model, batch)
    with SyncGuard() as guard:
        result = trainer.objective.search(trainer.model, batch)
    assert not guard.events, guard.report()
    assert result.candidates.valid is not None  # the static engine ran
    trainer.objective.options = dataclasses.replace(trainer.objective.options, static_shapes="off")
    with SyncGuard() as dynamic:
        trainer.objective.search(trainer.model, batch)
    assert dynamic.events


# ----------------------------------------------------------------------------------------- options
def test_auto_is_static_on_cuda_only() -> None:
    model, *_ = engine_tests.make_case("hamming")
    assert not use_static(SearchOptions(static_shapes="auto"), model)
    assert use_static(SearchOptions(static_shapes="on"), model)
    assert not use_static(SearchOptions(static_shapes="off"), model)


def test_static_shapes_option_is_checked() -> None:
    with pytest.raises(ConfigError, match="static_shapes"):
        SearnnConfig(static_shapes="yes")
    with pytest.raises(ConfigError, match="--static-shapes on does not support --rollout-vocab shortlist"):
        SearnnConfig(static_shapes="on", rollout_vocab="shortlist")
    SearnnConfig(static_shapes="auto", rollout_vocab="shortlist")  # auto keeps the dynamic engine for it
    assert not use_static(SearchOptions(static_shapes="auto", rollout_vocab="shortlist"), torch.nn.Linear(1, 1))


@pytest.mark.parametrize("loss", ["kl", "ll", "hinge"])
def test_compact_columns_of_the_static_search_give_the_dynamic_losses(loss) -> None:
    from searnn.objectives.cost_sensitive import LOSSES
    from searnn.objectives.searnn import compact_cells

    dynamic, static = run_both("edit", rollin="learned", rollout="learned", sample_tokens="topk", num_tokens=2)
    per_cell = []
    for result in (dynamic, static):
        b, t, v = result.costs.shape
        compact = compact_cells(result, b, t, v, max_fraction=1.0)  # force the compact form (V is small here)
        assert compact is not None
        columns, costs, prefer = compact
        logits = result.rollin.logits.detach().float().reshape(b * t, v).gather(1, columns)
        cells = LOSSES[loss](logits, costs, scale=10.0, prefer=prefer).view(b, t)
        per_cell.append(torch.where(result.cell_mask, cells, torch.zeros_like(cells)))
    t = per_cell[0].shape[1]
    assert torch.allclose(per_cell[1][:, :t], per_cell[0], atol=1e-6)
    assert not per_cell[1][:, t:].any()


# ----------------------------------------------------------------------------------- host lengths
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_encoder_packing_from_host_lengths_equals_the_default(cell) -> None:
    from searnn.models import ModelConfig, Seq2Seq

    torch.manual_seed(0)
    cfg = ModelConfig(emb_dim=6, hidden=8, tgt_emb_dim=5, cell=cell, enc_layers=2, bidirectional=True,
                      attention="additive")
    model = Seq2Seq(cfg, [9], None, 10).eval()
    src = torch.randint(4, 9, (5, 7, 1))
    src_len = torch.tensor([3, 7, 1, 7, 5])  # ties and an unsorted order
    plain = model.encode(src, src_len)
    host = model.encode(src, src_len, host_len=src_len.clone())
    for name in ("memory", "h_final", "keys"):
        assert torch.equal(getattr(plain, name), getattr(host, name)), name
    if cell == "lstm":
        assert torch.equal(plain.c_final, host.c_final)


def test_batches_carry_their_lengths_on_the_host() -> None:
    from searnn.api import make_batch
    from searnn.distributed import Context, shard_batch

    _, batch, _, _ = engine_tests.make_case("edit", batch_size=5)
    assert torch.equal(batch.src_len_host, batch.src_len) and batch.src_len_host is not batch.src_len
    moved = batch.to("cpu")
    assert moved.src_len_host is batch.src_len_host  # never moved to a device
    shard = shard_batch(batch, Context(rank=1, world=2))
    assert shard is not None and torch.equal(shard.src_len_host, shard.src_len)
    user = make_batch(batch.src, batch.src_len, batch.tgt[:, :-1], batch.tgt_len - 1)
    assert torch.equal(user.src_len_host, batch.src_len)


def test_a_run_trains_with_static_shapes_and_resumes_with_another_engine(tmp_path) -> None:
    from searnn.checkpoint import config_differences
    from searnn.train import Trainer

    values = {"task": "ocr", "limit_train": 16, "limit_valid": 8, "epochs": 1, "batch_size": 8, "progress": False,
              "checkpoint_minutes": 0.0, "objective": "searnn", "sample_tokens": "topk", "run_dir": str(tmp_path)}
    trainer = Trainer(build_config({**values, "static_shapes": "on"}))
    trainer.train_epoch(0)
    sums = trainer.state.sums
    assert sums["log:rollouts"] > 0 and "log:rollout_s" not in sums  # device counters, read after each step
    # the engine follows the device (auto), so it may change when a run resumes
    assert config_differences(build_config({**values, "static_shapes": "on"}),
                              build_config({**values, "static_shapes": "off"})) == []


# ----------------------------------------------------------------------------------------- Transformer
@pytest.mark.parametrize("cost_name", ["hamming", "bleu"])
def test_transformer_static_search_is_sync_free_and_gives_the_dynamic_costs(cost_name) -> None:
    import test_transformer

    model, batch, cost, fixed = test_transformer.transformer_case(cost_name)
    results = []
    for mode in ("off", "on"):
        torch.manual_seed(0)
        results.append(search(model, batch, cost, fixed, SearchOptions(rollin="learned", rollout="learned",
                                                                       static_shapes=mode)))
    assert_same_costs(*results)
    with SyncGuard() as guard:
        search(model, batch, cost, fixed, SearchOptions(static_shapes="on", sample_tokens="topk", num_tokens=2))
    assert not guard.events, guard.report()
