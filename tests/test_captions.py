"""The captions task (precomputed image features + reference captions) and the CIDEr-D metric."""

from __future__ import annotations

import json
import math
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from searnn.cli import main as cli
from searnn.data.captions import CaptionsConfig, load, tokenize
from searnn.data.registry import TASKS, load_task
from searnn.data.vocab import UNK_ID, Vocab
from searnn.errors import ConfigError, DataError
from searnn.evaluate import references
from searnn.metrics import LOWER_IS_BETTER, METRICS

WORDS = "a man dog cat riding on the grass red blue ball playing with".split()


def make_fixture(root: Path, regions: int = 3, dim: int = 8, fmt: str = "tsv", ids: bool = False,
                 sizes: dict[str, int] | None = None, seed: int = 0) -> Path:
    """Random features and 2-3 random captions per image (image 1 of valid has none)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for split, n in (sizes or {"train": 10, "valid": 4, "test": 3}).items():
        shape = (n, regions, dim) if regions else (n, dim)
        np.save(root / f"{split}_features.npy", rng.normal(size=shape).astype(np.float32))
        keys = [f"img{split}{i:03d}" for i in range(n)] if ids else [str(i) for i in range(n)]
        if ids:
            (root / f"{split}_images.txt").write_text("\n".join(keys) + "\n")
        caps: dict[str, list[str]] = {}
        for i in range(n):
            if split == "valid" and i == 1:
                continue
            caps[keys[i]] = [" ".join(rng.choice(WORDS, size=rng.integers(3, 8))) + "." for _ in range(2 + i % 2)]
        if fmt == "tsv":
            lines = [f"{k}\t{c}" for k, cs in caps.items() for c in cs]
            (root / f"{split}_captions.tsv").write_text("\n".join(lines) + "\n\n")
        else:
            (root / f"{split}_captions.json").write_text(json.dumps(caps))
    return root


def cfg(root: Path, **kw) -> CaptionsConfig:
    return CaptionsConfig(data_dir=str(root), **{"min_count": 1, **kw})


def test_registered_and_documented():
    assert "captions" in TASKS and TASKS["captions"][0] is CaptionsConfig
    assert "cider" in METRICS and LOWER_IS_BETTER["cider"] is False


def test_tokenize():
    c = CaptionsConfig()
    assert tokenize("A man's HAT,  on a (red) table.", c) == ["a", "mans", "hat", "on", "a", "red", "table"]
    assert tokenize("A Man.", CaptionsConfig(lowercase=False, strip_punctuation=False)) == ["A", "Man."]


def test_splits_examples_and_references(tmp_path):
    root = make_fixture(tmp_path / "d")
    task = load(cfg(root, max_len=4))
    train_caps = [ln.split("\t") for ln in (root / "train_captions.tsv").read_text().splitlines() if ln]
    assert len(task.train) == len(train_caps) == task.info["sizes"]["train"]
    assert task.src_feature_dim == 8 and task.src_vocabs == [] and not task.fixed_length
    assert task.metric == "bleu" and task.cost == "bleu" and not task.lower_is_better
    feats = np.load(root / "train_features.npy")
    first = task.train[0]
    assert first.src.shape == (3, 8) and np.array_equal(np.asarray(first.src), feats[0])
    assert first.meta["image"] == 0 and len(first.tgt) <= 4  # truncated to max_len
    image0 = [c for k, c in train_caps if k == "0"]
    assert len(first.refs) == len(image0) - 1
    assert task.train[1].tgt == first.refs[0]  # the other captions of the image, truncated alike
    # valid: one example per image with captions (image 1 has none), references complete and in file order
    assert len(task.valid) == 3 and task.info["images_without_captions"] == {"valid": 1, "test": 0}
    valid_caps = [ln.split("\t") for ln in (root / "valid_captions.tsv").read_text().splitlines() if ln]
    ex = task.valid[1]
    assert ex.meta["image"] == 2 and ex.meta["image_id"] == "2"
    expected = [tokenize(c, CaptionsConfig()) for k, c in valid_caps if k == "2"]
    assert ex.meta["ref_tokens"] == expected
    assert [task.tgt_vocab.decode(r) for r in references([ex])[0]] == [
        [w if w in task.tgt_vocab else "<unk>" for w in ref] for ref in expected]
    assert task.info["truncated"] > 0 and max(len(r) for r in expected) > 0


def test_global_features_json_captions_and_image_ids(tmp_path):
    root = make_fixture(tmp_path / "d", regions=0, fmt="json", ids=True)
    task = load(cfg(root, max_len=0))
    assert task.train[0].src.shape == (1, 8) and task.valid[0].meta["image_id"] == "imgvalid000"
    data = json.loads((root / "train_captions.json").read_text())
    assert len(task.train) == sum(len(v) for v in data.values())
    assert task.info["feature_shape"] == [8]


def test_min_count_and_limit_train(tmp_path):
    root = make_fixture(tmp_path / "d")
    with (root / "train_captions.tsv").open("a") as f:
        f.write("9\tZebra zebra giraffe\n")
    rare = load(cfg(root, min_count=1))
    common = load(cfg(root, min_count=2, limit_train=5))
    assert "giraffe" in rare.tgt_vocab and "giraffe" not in common.tgt_vocab and "zebra" in common.tgt_vocab
    assert len(common.train) == 5 and len(rare.train) == len(common.train) + 21


def test_parse_source_and_format_output(tmp_path):
    task = load(cfg(make_fixture(tmp_path / "d")))
    assert task.parse_source(" ".join(["0.5"] * 16)).shape == (2, 8)
    np.save(tmp_path / "one.npy", np.ones((5, 8), dtype=np.float64))
    arr = task.parse_source(str(tmp_path / "one.npy"))
    assert arr.shape == (5, 8) and arr.dtype == np.float32
    with pytest.raises(DataError, match="not a multiple of the feature size 8"):
        task.parse_source("1 2 3")
    word = task.tgt_vocab.itos[4]
    assert task.format_output([task.tgt_vocab.stoi[word], UNK_ID]) == f"{word} <unk>"


@pytest.mark.parametrize(
    ("mutate", "error", "match"),
    [
        (lambda r: None, ConfigError, r"unknown captions metric 'meteor'"),
        (lambda r: (r / "test_features.npy").unlink(), DataError, r"test_features.npy: file not found"),
        (lambda r: (r / "valid_captions.tsv").write_text("0\ta dog\n1 a cat\n"), DataError,
         r"valid_captions.tsv:2: expected 'image<TAB>caption'"),
        (lambda r: (r / "valid_captions.tsv").write_text("0\ta dog\n9\ta cat\n"), DataError,
         r"valid_captions.tsv:2: image row 9 out of range: valid_features.npy has 4 rows"),
        (lambda r: (r / "valid_captions.tsv").write_text("x\ta dog\n"), DataError,
         r"image 'x' is not a row number \(add valid_images.txt"),
        (lambda r: (r / "valid_images.txt").write_text("a\nb\nc\nd\n"), DataError,
         r"image id '0' is not listed in valid_images.txt"),
        (lambda r: (r / "valid_images.txt").write_text("a\nb\n"), DataError, r"2 image ids but valid_features.npy"),
        (lambda r: np.save(r / "test_features.npy", np.zeros((3, 5), np.float32)), DataError,
         r"the feature size F differs between splits"),
        (lambda r: np.save(r / "test_features.npy", np.zeros(3, np.float32)), DataError, r"expected shape \(N, F\)"),
        (lambda r: (r / "test_captions.json").write_text("{}"), DataError, r"both test_captions.tsv and"),
        (lambda r: (r / "train_captions.tsv").unlink(), DataError, r"no train_captions.tsv or train_captions.json"),
        (lambda r: (r / "test_captions.tsv").write_text("0\t...\n"), DataError, r"no test image has a caption"),
    ],
)
def test_data_errors(tmp_path, mutate, error, match):
    root = make_fixture(tmp_path / "d")
    mutate(root)
    config = cfg(root, metric="meteor") if "meteor" in match else cfg(root)
    with pytest.raises(error, match=match):
        load(config)


def test_needs_a_data_dir(tmp_path):
    with pytest.raises(DataError, match="ships no data; pass --data-dir"):
        load_task("captions")
    with pytest.raises(DataError, match="not found"):
        load(CaptionsConfig(data_dir=str(tmp_path / "nope")))


# --------------------------------------------------------------------------------------------- CIDEr-D


def cider_by_hand(hyps: list[list[str]], refs: list[list[list[str]]]) -> float:
    """Corpus CIDEr-D x 100 written out with dictionaries (coco-caption: idf over the evaluated refs)."""
    def grams(s: list[str], n: int) -> Counter:
        return Counter(tuple(s[i : i + n]) for i in range(len(s) - n + 1))

    df: Counter = Counter()
    for rs in refs:
        df.update({g for r in rs for n in range(1, 5) for g in grams(r, n)})
    log_d = math.log(len(refs))

    def vec(s: list[str], n: int) -> dict:
        return {g: c * (log_d - math.log(max(1.0, df[g]))) for g, c in grams(s, n).items()}

    total = 0.0
    for h, rs in zip(hyps, refs, strict=True):
        score = 0.0
        for r in rs:
            for n in range(1, 5):
                vh, vr = vec(h, n), vec(r, n)
                nh, nr = math.sqrt(sum(v * v for v in vh.values())), math.sqrt(sum(v * v for v in vr.values()))
                dot = sum(min(v, vr.get(g, 0.0)) * vr.get(g, 0.0) for g, v in vh.items())
                if nh > 0 and nr > 0:
                    score += dot / (nh * nr) * math.exp(-((len(h) - len(r)) ** 2) / 72.0) / 4
        total += 10.0 * score / len(rs)
    return 100.0 * total / len(hyps)


def test_cider_metric_matches_the_formula():
    rng = np.random.default_rng(5)
    vocab = Vocab(WORDS)
    hyps = [list(rng.choice(WORDS, size=rng.integers(2, 9))) for _ in range(12)]
    refs = [[list(rng.choice(WORDS, size=rng.integers(3, 9))) for _ in range(rng.integers(1, 4))] for _ in range(12)]
    refs[0].append(list(hyps[0]))
    result = METRICS["cider"]([vocab.encode(h) for h in hyps], [[vocab.encode(r) for r in rs] for rs in refs], vocab)
    assert result.value == pytest.approx(cider_by_hand(hyps, refs), rel=1e-4)
    assert result.value > 0 and "CIDEr-D" in result.signature and result.details["sentences"] == 12


def test_cider_reference_unk_never_matches():
    vocab = Vocab(WORDS)
    other = [[vocab.encode(["red", "ball"])], [vocab.encode(["blue", "dog", "on", "grass"])]]
    with_unk = METRICS["cider"]([[UNK_ID, 5], [8, 9], [8]], [[[UNK_ID, 5]], *other], vocab).value
    spelled = METRICS["cider"]([[4, 5], [8, 9], [8]], [[[4, 5]], *other], vocab).value
    assert with_unk < spelled


# --------------------------------------------------------------------------------------------- end to end


@pytest.mark.parametrize("metric", ["bleu", "cider"])
def test_one_epoch_cli_run_evaluate_and_predict(tmp_path, metric, capsys, monkeypatch):
    root = make_fixture(tmp_path / "d", sizes={"train": 16, "valid": 5, "test": 4})
    run_dir = tmp_path / "run"
    rc = cli(["train", "--task", "captions", "--data-dir", str(root), "--min-count", "1", "--metric", metric,
              "--epochs", "1", "--hidden", "16", "--emb-dim", "16", "--tgt-emb-dim", "16", "--batch-size", "8",
              "--max-decode-len", "12", "--attention", "additive", "--threads", "1", "--progress", "false",
              "--run-dir", str(run_dir)])
    assert rc == 0
    results = json.loads((run_dir / "results.json").read_text())
    assert results["task"] == "captions" and results["metric"] == metric and results["epochs"] == 1
    assert 0.0 <= results["test"][metric] and results["train_examples"] > 16
    capsys.readouterr()
    assert cli(["evaluate", str(run_dir), "--split", "valid"]) == 0
    assert json.loads(capsys.readouterr().out)["metric"] == metric
    monkeypatch.setattr(sys, "stdin", __import__("io").StringIO(" ".join(["0.1"] * 8) + "\n"))
    assert cli(["predict", str(run_dir)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1
