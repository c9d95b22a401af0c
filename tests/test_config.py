"""Config resolution: defaults < YAML < command line; unknown keys and bad values are clear errors."""

import pytest

from searnn.config import build_config, read_yaml
from searnn.errors import ConfigError


def test_defaults_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  lr: 0.5\n  optimizer: sgd\nmodel:\n  hidden: 32\nepochs: 3\n")
    values = read_yaml(path)
    values.update({"epochs": "7"})
    cfg = build_config(values)
    assert cfg.train.lr == 0.5 and cfg.train.optimizer == "sgd"
    assert cfg.model.hidden == 32
    assert cfg.train.epochs == 7
    assert cfg.train.task == "ocr" and cfg.train.objective == "mle"


def test_unknown_key_suggests_close_names():
    with pytest.raises(ConfigError, match="did you mean"):
        build_config({"epoch": 3})


def test_unknown_task_and_objective_list_valid_names():
    with pytest.raises(ConfigError, match="valid: .*ocr"):
        build_config({"task": "nope"})
    with pytest.raises(ConfigError, match="valid: .*mle"):
        build_config({"objective": "nope"})


def test_bad_values():
    with pytest.raises(ConfigError, match="expected int"):
        build_config({"epochs": "three"})
    with pytest.raises(ConfigError, match="optimizer"):
        build_config({"optimizer": "rmsprop"})
    with pytest.raises(ConfigError, match="expected bool"):
        build_config({"progress": "maybe"})


def test_save_and_reload_roundtrip(tmp_path):
    cfg = build_config({"lr": 0.01, "hidden": 16})
    cfg.save(tmp_path / "config.yaml")
    again = build_config(read_yaml(tmp_path / "config.yaml"))
    assert again.to_dict() == cfg.to_dict()


def test_yaml_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        read_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        read_yaml(bad)


@pytest.mark.parametrize(
    "values,message",
    [
        ({"objective": "searnn", "rollin": "sideways"}, "unknown --rollin 'sideways'"),
        ({"cell": "rnn"}, "unknown --cell 'rnn'"),
        ({"objective": "seq-smoothing", "sub_vocab": "all"}, "unknown --sub-vocab 'all'"),
        ({"objective": "token-smoothing", "embeddings_path": "/no/such/file"}, "--embeddings-path '/no/such/file'"),
        ({"lr_schedule": "cosine"}, "unknown --lr-schedule 'cosine'"),
        ({"lr": "nan"}, "option --lr: expected a finite number"),
        ({"lr_decay": -3}, r"--lr-decay must be in \(0, 1\], got -3"),
        ({"checkpoint_minutes": -1}, "--checkpoint-minutes must be >= 0"),
        ({"clip_norm": float("nan")}, "--clip-norm"),
        ({"epoch": 3}, "unknown option 'epoch'; did you mean epochs"),
        ({"rollin": "learned"}, "'rollin' belongs to --objective searnn / searnn-tok"),
        ({"task": "ocr", "tokenize": "char"}, "'tokenize' belongs to --task tsv"),
    ],
)
def test_errors_name_the_option(values, message):
    with pytest.raises(ConfigError, match=message):
        build_config(values)


def test_flag_names_rewrites_only_option_names():
    from searnn.config import flag_names

    options = {"rollin", "hidden", "train_dim", "train_window"}
    assert flag_names("unknown rollin 'x'; valid: a, b", options) == "unknown --rollin 'x'; valid: a, b"
    assert flag_names("model.hidden must be a positive integer", options) == "--hidden must be a positive integer"
    both = "--train-dim and --train-window must be >= 1"
    assert flag_names("train_dim and train_window must be >= 1", options) == both
    assert flag_names("unknown colour 'red'", options) == "unknown colour 'red'"


def test_config_files_that_are_not_yaml_text(tmp_path):
    binary = tmp_path / "b.yaml"
    binary.write_bytes(b"\x00\x01\x02lr: 1\n")
    with pytest.raises(ConfigError, match="b.yaml: a binary file"):
        read_yaml(binary)
    latin = tmp_path / "l.yaml"
    latin.write_bytes(b"epochs: 2\nname: caf\xe9\n")
    with pytest.raises(ConfigError, match=r"l.yaml:2: not valid UTF-8"):
        read_yaml(latin)
    with pytest.raises(ConfigError, match="is a directory"):
        read_yaml(tmp_path)
    broken = tmp_path / "x.yaml"
    broken.write_text("a: 1\nb: [2\nc: 3\n")
    with pytest.raises(ConfigError, match=r"x.yaml:3: invalid YAML \(") as err:
        read_yaml(broken)
    assert "\n" not in str(err.value)
    bom = tmp_path / "bom.yaml"
    bom.write_bytes("\ufeffepochs: 4\n".encode())
    assert read_yaml(bom) == {"epochs": 4}
