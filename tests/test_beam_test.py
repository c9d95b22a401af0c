"""Beam test with len_norm chosen on validation (--test-beam), saved test decodings, report --split/--paired-bs."""

import json
import random
from pathlib import Path

import pytest

import searnn.train as train_module
from searnn.beam_test import choose_len_norm
from searnn.checkpoint import config_differences
from searnn.cli import main
from searnn.config import build_config
from searnn.errors import ConfigError
from searnn.paired import bleu_from_stats, run_stats, sentence_stats
from searnn.train import run

WORDS = "ab ba cab dab bed fed dead bad".split()


def tiny_bleu_task(root: Path) -> dict[str, str]:
    """A ``tsv`` task of word sequences scored by BLEU: 32 training pairs, 8 validation, 10 test."""
    rng = random.Random(0)
    files = {}
    for split, n in (("train", 32), ("valid", 8), ("test", 10)):
        lines = []
        for _ in range(n):
            words = [rng.choice(WORDS) for _ in range(rng.randint(3, 7))]
            lines.append(" ".join(words) + "\t" + " ".join(reversed(words)) + "\n")
        path = root / f"{split}.tsv"
        path.write_text("".join(lines))
        files[split] = str(path)
    return files


def tiny_cfg(root: Path, name: str, **kw):
    values = {"task": "tsv", **tiny_bleu_task(root), "tokenize": "space", "metric": "bleu", "epochs": 2,
              "batch_size": 8, "hidden": 16, "emb_dim": 16, "tgt_emb_dim": 16, "lr": 0.01, "progress": False,
              "checkpoint_minutes": 0.0, "run_dir": str(root / name)}
    values.update(kw)
    return build_config(values)


def test_choose_len_norm_is_the_first_argmax():
    rng = random.Random(3)
    for _ in range(200):
        choices = [round(0.2 * i, 1) for i in range(rng.randint(1, 6))]
        scores = {c: float(rng.randint(0, 3)) for c in choices}
        lower = rng.random() < 0.5
        best = min(scores.values()) if lower else max(scores.values())
        expected = next(c for c in choices if scores[c] == best)  # brute force: first of the best
        assert choose_len_norm(scores, lower) == expected


def test_len_norm_choices_are_checked():
    with pytest.raises(ConfigError, match="--len-norm-choices must be >= 0"):
        build_config({"len_norm_choices": "0,-0.5"})
    with pytest.raises(ConfigError, match="--test-beam must be >= 0"):
        build_config({"test_beam": -1})
    assert build_config({"len_norm_choices": "0,0.5"}).train.len_norm_choices == [0.0, 0.5]


def test_beam_options_may_change_on_resume(tmp_path):
    a = tiny_cfg(tmp_path, "r")
    b = tiny_cfg(tmp_path, "r", test_beam=3, len_norm_choices=[0.0, 1.0])
    assert config_differences(a, b) == []


def test_beam_one_equals_greedy_and_hyps_are_saved(tmp_path):
    results = run(tiny_cfg(tmp_path, "b1", test_beam=1, len_norm_choices=[0.0, 0.5]))
    beam = results["test_beam"]
    assert beam["test"] == results["test"] and beam["len_norm"] == 0.0 and beam["beam"] == 1
    run_dir = tmp_path / "b1"
    greedy = (run_dir / "test_hyps.txt").read_text()
    assert (run_dir / "test_beam_hyps.txt").read_text() == greedy
    assert len(greedy.splitlines()) == 10
    saved = json.loads((run_dir / "results.json").read_text())
    assert "hyps" not in saved["test_beam"] and saved["test_beam"]["test"] == results["test"]


def test_saved_test_hyps_give_the_reported_bleu(tmp_path):
    results = run(tiny_cfg(tmp_path, "r", epochs=3))
    stats = run_stats(tmp_path / "r", "test", {})
    assert float(bleu_from_stats(stats.sum(0))) == pytest.approx(results["test"]["bleu"], abs=1e-9)


def test_len_norm_is_the_validation_argmax_and_test_is_decoded_once(tmp_path, monkeypatch):
    calls: list[tuple[str, int, float]] = []
    real = train_module.evaluate

    def counting(model, task, split, cfg, device, *args, **kwargs):
        calls.append((split, cfg.beam, cfg.len_norm))
        return real(model, task, split, cfg, device, *args, **kwargs)

    monkeypatch.setattr(train_module, "evaluate", counting)
    choices = [0.0, 0.5, 1.0, 2.0]
    results = run(tiny_cfg(tmp_path, "b3", test_beam=3, len_norm_choices=choices))
    beam = results["test_beam"]
    beam_tests = [c for c in calls if c[0] == "test" and c[1] == 3]
    assert beam_tests == [("test", 3, beam["len_norm"])]
    assert [c for c in calls if c[0] == "valid" and c[1] == 3] == [("valid", 3, c) for c in choices]
    # brute force: the best validation score, recomputed from the saved model for every choice
    monkeypatch.setattr(train_module, "evaluate", real)
    by_choice = {}
    for c in choices:
        out = main_json(["evaluate", str(tmp_path / "b3"), "--split", "valid", "--beam", "3", "--len-norm", str(c)])
        by_choice[c] = out["bleu"]
    assert by_choice == {float(k): v for k, v in beam["valid_by_len_norm"].items()}
    best = max(by_choice.values())
    assert beam["len_norm"] == next(c for c in choices if by_choice[c] == best)
    assert beam["valid"]["bleu"] == best


def main_json(argv: list[str]) -> dict:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(argv) == 0
    return json.loads(out.getvalue())


def test_evaluate_save_hyps_writes_the_training_decoding(tmp_path):
    run(tiny_cfg(tmp_path, "r"))
    target = tmp_path / "again.txt"
    main_json(["evaluate", str(tmp_path / "r"), "--save-hyps", str(target)])
    assert target.read_text() == (tmp_path / "r" / "test_hyps.txt").read_text()


def test_resume_with_a_beam_test_added(tmp_path):
    run(tiny_cfg(tmp_path, "r", epochs=1))
    results = run(tiny_cfg(tmp_path, "r", epochs=2, test_beam=2, len_norm_choices=[0.0]))
    assert results["epochs"] == 2 and results["test_beam"]["beam"] == 2


def test_report_split_and_paired_bs(tmp_path, capsys):
    for row, lr in (("mle", 0.01), ("other", 0.02)):
        run(tiny_cfg(tmp_path, f"grid/{row}/seed1", test_beam=2, len_norm_choices=[0.0, 1.0], lr=lr))
    assert main(["report", str(tmp_path / "grid"), "--split", "test_beam", "--paired-bs", "mle",
                 "--out", str(tmp_path / "t.json")]) == 0
    text = capsys.readouterr().out
    assert "paired bootstrap" in text and "| other | mle | 1 |" in text
    data = json.loads((tmp_path / "t.json").read_text())
    (record,) = data["paired_bs"]
    other = json.loads((tmp_path / "grid/other/seed1/results.json").read_text())
    base = json.loads((tmp_path / "grid/mle/seed1/results.json").read_text())
    assert record["system"] == pytest.approx(other["test_beam"]["test"]["bleu"], abs=1e-9)
    assert record["base"] == pytest.approx(base["test_beam"]["test"]["bleu"], abs=1e-9)
    assert 0 < record["p"] <= 1
    rows = {r["label"]: r for r in data["rows"]}
    assert rows["other"]["test"]["values"] == [other["test_beam"]["test"]["bleu"]]


def test_paired_bs_needs_saved_hyps(tmp_path, capsys):
    for row in ("mle", "other"):
        run(tiny_cfg(tmp_path, f"grid/{row}/seed1"))
    (tmp_path / "grid/other/seed1/test_hyps.txt").unlink()
    capsys.readouterr()
    assert main(["report", str(tmp_path / "grid"), "--paired-bs", "mle"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "test_hyps.txt: missing" in err[0] and "--save-hyps" in err[0]


def test_sentence_stats_from_a_file_split_like_sacrebleu():
    stats = sentence_stats([["a", "b"]], [[["a", "b"], ["a"]]])
    assert stats.tolist() == [[2, 2, 2, 1, 0, 0, 2, 1, 0, 0]]


def test_a_beam_test_is_added_to_a_finished_run_without_training(tmp_path):
    first = run(tiny_cfg(tmp_path, "r", epochs=1))
    before = (tmp_path / "r" / "metrics.jsonl").read_text()
    again = run(tiny_cfg(tmp_path, "r", epochs=1, test_beam=2, len_norm_choices=[0.0, 1.0]))
    assert (tmp_path / "r" / "metrics.jsonl").read_text() == before  # no epoch trained
    assert again["test"] == first["test"] and again["epochs"] == 1
    assert list(again["test_beam"]["valid_by_len_norm"]) == ["0.0", "1.0"]
    assert (tmp_path / "r" / "test_beam_hyps.txt").exists()
    # asked again for the same beam test: finished, nothing evaluated
    assert run(tiny_cfg(tmp_path, "r", epochs=1, test_beam=2, len_norm_choices=[0.0, 1.0])) == again


def test_paired_bs_refuses_other_metrics_and_other_test_sets(tmp_path, capsys):
    run(tiny_cfg(tmp_path, "grid/mle/seed1", epochs=1))
    run(tiny_cfg(tmp_path, "grid/cer/seed1", epochs=1, metric="cer"))
    capsys.readouterr()
    assert main(["report", str(tmp_path / "grid"), "--paired-bs", "cer"]) == 1
    assert "the paired bootstrap is for BLEU; this row's metric is cer" in capsys.readouterr().err
    other = tmp_path / "other"
    other.mkdir()
    files = tiny_bleu_task(other)
    Path(files["test"]).write_text("".join(Path(files["test"]).read_text().splitlines(True)[:7]))
    run(tiny_cfg(tmp_path, "grid/short/seed1", epochs=1, test=files["test"]))
    capsys.readouterr()
    assert main(["report", str(tmp_path / "grid"), "--paired-bs", "mle", "--force"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has 7 test sentences" in err[0] and "the same test set" in err[0]
