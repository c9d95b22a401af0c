"""Seed statistics, Welch's t-test and the bootstrap (searnn.significance), and the report options and
headline check built on them (``searnn report --stats / --test-against / --against``)."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pytest

from searnn import significance
from searnn.cli import main as cli
from searnn.errors import DataError
from searnn.headlines import load_headlines

# ------------------------------------------------------------------------------------ Student's t and Welch


@pytest.mark.parametrize("t", [0.0, 0.3, 1.0, 2.5, 7.0, -1.2])
def test_student_t_tail_matches_closed_forms(t):
    # df = 1 is the Cauchy distribution; df = 2 has a closed form too.
    assert significance.student_t_sf(t, 1.0) == pytest.approx(0.5 - math.atan(t) / math.pi, abs=1e-12)
    assert significance.student_t_sf(t, 2.0) == pytest.approx(0.5 - t / (2 * math.sqrt(2 + t * t)), abs=1e-12)


def test_student_t_tail_approaches_the_normal_for_large_df():
    for t in (0.5, 1.96, 3.0):
        normal = 0.5 * math.erfc(t / math.sqrt(2))
        assert significance.student_t_sf(t, 1e6) == pytest.approx(normal, rel=1e-4)


def test_student_t_tail_by_numerical_integration():
    # P(T > t) = integral of the density from t to infinity, by the midpoint rule after x = t + u/(1-u).
    df, t = 5.3, 1.7
    c = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi)
    n, total = 200000, 0.0
    for i in range(n):
        u = (i + 0.5) / n
        x = t + u / (1 - u)
        total += c * (1 + x * x / df) ** (-(df + 1) / 2) / (1 - u) ** 2
    assert significance.student_t_sf(t, df) == pytest.approx(total / n, rel=1e-6)


def test_welch_against_the_textbook_formulas():
    a, b = [1.15, 1.45, 1.54, 1.80, 1.84, 2.04], [1.95, 2.56, 2.10]
    w = significance.welch(a, b)
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    t = (statistics.fmean(a) - statistics.fmean(b)) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    assert w is not None
    assert w.t == pytest.approx(t) and w.df == pytest.approx(df)
    assert w.p == pytest.approx(2 * significance.student_t_sf(abs(t), df))
    scipy_stats = pytest.importorskip("scipy.stats")
    ref = scipy_stats.ttest_ind(a, b, equal_var=False)
    assert w.t == pytest.approx(float(ref.statistic), rel=1e-10)
    assert w.p == pytest.approx(float(ref.pvalue), rel=1e-8)


def test_welch_edge_cases():
    assert significance.welch([1.0], [1.0, 2.0]) is None
    same = significance.welch([2.0, 2.0], [2.0, 2.0])
    assert same is not None and same.p == 1.0 and same.t == 0.0
    apart = significance.welch([1.0, 1.0], [2.0, 2.0])
    assert apart is not None and apart.p == 0.0 and apart.t == -math.inf


def test_bootstrap_interval_and_p_value():
    far = significance.bootstrap([1.0, 1.1, 0.9, 1.05], [3.0, 3.1, 2.9, 3.05], resamples=2000)
    assert far is not None
    assert far.diff == pytest.approx(-2.0)
    assert far.low <= far.diff <= far.high < 0
    assert far.p == pytest.approx(1 / 2001)  # no resample under the null reaches a gap of 2
    same = significance.bootstrap([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], resamples=2000)
    assert same is not None and same.p == 1.0 and same.low < 0 < same.high
    again = significance.bootstrap([1.0, 1.1, 0.9, 1.05], [3.0, 3.1, 2.9, 3.05], resamples=2000)
    assert again == far  # fixed generator seed: a report prints the same figures twice


def test_summary_median_and_range():
    s = significance.summary([3.0, 1.0, 2.0, 10.0])
    assert (s.n, s.median, s.low, s.high) == (4, 2.5, 1.0, 10.0)
    assert s.std == pytest.approx(statistics.stdev([3.0, 1.0, 2.0, 10.0]))


# ------------------------------------------------------------------------------------------ the report


def finished(run_dir: Path, row: str, seed: int, test: float, valid: float = 1.0,
             config: dict | None = None, beam_test: float | None = None) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    results = {"task": "ocr", "objective": "mle", "metric": "cer", "lower_is_better": True,
               "valid": {"cer": valid}, "test": {"cer": test}, "best_epoch": 2, "epochs": 3,
               "seconds_per_epoch": 1.0, "train_seconds": 3.0, "seed": seed}
    if config is not None:
        results["config"] = config
    if beam_test is not None:
        results["test_beam"] = {"beam": 3, "len_norm": 1.0, "valid": {"cer": valid}, "test": {"cer": beam_test}}
    (run_dir / "results.json").write_text(json.dumps(results))
    (run_dir / "grid_run.json").write_text(json.dumps({"row": row, "seed": seed}))


def test_report_stats_and_tests(tmp_path, capsys):
    mle, kl = [2.0, 2.5, 2.2, 1.9], [1.5, 1.7, 1.4]
    for i, v in enumerate(mle, 1):
        finished(tmp_path / "mle" / f"seed{i}", "mle", i, v)
    for i, v in enumerate(kl, 1):
        finished(tmp_path / "kl" / f"seed{i}", "kl", i, v)
    out = tmp_path / "t.json"
    assert cli(["report", str(tmp_path), "--stats", "--test-against", "mle", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| mle | cer ↓ | 4 | 2.15 ± 0.26 | 2.10 | 1.90–2.50 | 1: 2.00, 2: 2.50, 3: 2.20, 4: 1.90 |" in text
    w = significance.welch(kl, mle)
    assert w is not None
    assert f"| kl | mle | {statistics.fmean(kl) - statistics.fmean(mle):+.2f} | {w.t:.2f} ({w.df:.1f}) |" in text
    data = json.loads(out.read_text())
    assert data["tests"][0]["row"] == "kl" and data["tests"][0]["welch"]["p"] == pytest.approx(w.p)


def test_rows_scored_on_other_data_are_not_tested_against_each_other(tmp_path, capsys):
    """Spelling at noise 0.5 has another test set than at noise 0.3: no test between them. A row trained on
    more data (train_size) is still scored on the same test set, so it is tested."""

    def config(noise: float, train_size: int = 20000) -> dict:
        return {"task": {"noise": noise, "train_size": train_size, "split_seed": 1234}, "train": {"limit_valid": 0}}

    rows = {"mle03": (config(0.3), [24.6, 24.9, 24.7]), "sll03": (config(0.3), [23.2, 23.3, 23.25]),
            "mle03-5x": (config(0.3, 100000), [23.3, 23.2, 23.4]), "mle05": (config(0.5), [45.1, 45.3, 45.2])}
    for row, (cfg, values) in rows.items():
        for i, v in enumerate(values, 1):
            finished(tmp_path / row / f"seed{i}", row, i, v, config=cfg)
    out = tmp_path / "t.json"
    assert cli(["report", str(tmp_path), "--test-against", "mle03", "--out", str(out)]) == 0
    tested = {t["row"] for t in json.loads(out.read_text())["tests"]}
    assert tested == {"sll03", "mle03-5x"}
    capsys.readouterr()


def test_report_test_against_an_unknown_row_is_one_clear_error(tmp_path, capsys):
    finished(tmp_path / "mle" / "seed1", "mle", 1, 2.0)
    assert cli(["report", str(tmp_path), "--test-against", "mlee"]) != 0
    err = capsys.readouterr().err
    assert "--test-against 'mlee': no such row; rows: mle" in err and "Traceback" not in err


# ------------------------------------------------------------------------------------ the headline check


def headlines_file(path: Path, entries: list[dict], **top) -> Path:
    path.write_text(json.dumps({"headlines": entries, **top}))
    return path


def test_headline_check_within_outside_and_missing(tmp_path, capsys):
    finished(tmp_path / "runs" / "mle" / "seed1", "mle", 1, 2.5)
    finished(tmp_path / "runs" / "kl" / "seed1", "kl", 1, 1.0)
    entries = [
        {"name": "OCR MLE", "row": "mle", "stated": {"mean": 2.2, "std": 0.2, "n": 3, "commit": "abcdef0123"}},
        {"name": "OCR KL", "row": "kl", "stated": {"mean": 1.5, "std": 0.2, "n": 3, "commit": "abcdef0123"}},
        {"name": "spelling", "row": "spell", "stated": {"mean": 20.0, "n": 1}, "tolerance": 0.5,
         "tolerance_from": "a sibling row"},
    ]
    path = headlines_file(tmp_path / "h.json", entries)
    assert cli(["report", str(tmp_path / "runs"), "--against", str(path)]) == 1
    text = capsys.readouterr().out
    assert "| OCR MLE | mle | 2.20 ± 0.20 (3, abcdef0) | 1.80–2.60 | 2.50 (1) | yes |" in text
    assert "| OCR KL | kl | 1.50 ± 0.20 (3, abcdef0) | 1.10–1.90 | 1.00 (1) | NO |" in text
    assert "| spelling | spell | 20.00 (1, ?) | 19.50–20.50 | no finished run | MISSING |" in text
    assert "1 of 3 headlines within their stated spread; outside: OCR KL; no finished run: spell." in text
    # all within: exit status 0
    path = headlines_file(tmp_path / "h2.json", entries[:1], sigmas=1.5)
    assert cli(["report", str(tmp_path / "runs"), "--against", str(path)]) == 0


def test_headline_check_reads_the_beam_test_when_asked(tmp_path, capsys):
    """``split: test_beam`` is checked against the beam-search test figure, not the greedy one; a run without a
    beam test has no figure for it."""
    finished(tmp_path / "runs" / "mle" / "seed1", "mle", 1, 30.0, beam_test=31.5)
    finished(tmp_path / "runs" / "kl" / "seed1", "kl", 1, 30.0)
    stated = {"mean": 31.0, "std": 0.4, "n": 3, "commit": "abcdef0123"}
    entries = [{"name": "greedy", "row": "mle", "split": "test", "stated": stated},
               {"name": "beam", "row": "mle", "split": "test_beam", "stated": stated},
               {"name": "beam kl", "row": "kl", "split": "test_beam", "stated": stated}]
    path = headlines_file(tmp_path / "h.json", entries)
    assert cli(["report", str(tmp_path / "runs"), "--against", str(path)]) == 1
    text = capsys.readouterr().out
    assert "| greedy | mle | 31.00 ± 0.40 (3, abcdef0) | 30.20–31.80 | 30.00 (1) | NO |" in text
    assert "| beam | mle | 31.00 ± 0.40 (3, abcdef0) | 30.20–31.80 | 31.50 (1) | yes |" in text
    assert "| beam kl | kl | 31.00 ± 0.40 (3, abcdef0) | 30.20–31.80 | no finished run | MISSING |" in text


@pytest.mark.parametrize("entries, top, message", [
    ([{"name": "a", "row": "r", "stated": {"mean": 1.0, "n": 1}}], {}, "needs a \"tolerance\""),
    ([{"name": "a", "row": "r", "stated": {"mean": "x", "std": 1, "n": 2}}], {}, "must be a finite number"),
    ([{"name": "a", "row": "r", "stated": {"mean": 1.0, "std": 1, "n": 2}, "spread": 1}], {}, "unknown key 'spread'"),
    ([{"name": "a", "row": "r", "split": "dev", "stated": {"mean": 1.0, "std": 1, "n": 2}}], {}, "split 'dev'"),
    ([{"row": "r", "stated": {"mean": 1.0}}], {}, "has no 'name'"),
    ([{"name": "a", "row": "r", "stated": {"mean": 1.0, "std": 1, "n": 2}}] * 2, {}, "used twice"),
    ([{"name": "a", "row": "r", "stated": {"mean": 1.0, "std": 1, "n": 2}}], {"sigma": 2}, "unknown key 'sigma'"),
    ([], {}, "non-empty list"),
])
def test_bad_headline_files_are_clear_errors(tmp_path, entries, top, message):
    with pytest.raises(DataError, match=message):
        load_headlines(headlines_file(tmp_path / "h.json", entries, **top))


def test_shipped_headlines_file_is_valid_and_names_grid_rows():
    from searnn.experiment import load_grid

    root = Path(__file__).resolve().parents[1]
    headlines = load_headlines(root / "RESULTS-headlines.json")
    grid = load_grid(root / "configs" / "experiments" / "headlines.yaml")
    rows = set(grid.rows)
    assert {h.row for h in headlines} <= rows
    assert all(h.commit != "?" for h in headlines)


def test_a_one_seed_row_gets_its_difference_but_no_test(tmp_path, capsys):
    """One seed has no spread: neither Welch nor the bootstrap can test it (the bootstrap would resample the
    other row only and report a confidence that does not exist)."""
    assert significance.bootstrap([1.0], [2.0, 2.1, 1.9]) is None
    for i, v in enumerate([2.0, 2.5, 2.2], 1):
        finished(tmp_path / "mle" / f"seed{i}", "mle", i, v)
    finished(tmp_path / "ls" / "seed1", "ls", 1, 1.5)
    out = tmp_path / "t.json"
    assert cli(["report", str(tmp_path), "--test-against", "mle", "--out", str(out)]) == 0
    assert "| ls | mle | -0.73 | — | — | — | — |" in capsys.readouterr().out
    (test,) = json.loads(out.read_text())["tests"]
    assert test["row"] == "ls" and test["welch"] is None and test["bootstrap"] is None
    assert test["diff"] == pytest.approx(1.5 - statistics.fmean([2.0, 2.5, 2.2]))
