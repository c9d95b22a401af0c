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
