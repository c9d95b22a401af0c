"""The task registry: names, config classes, unknown names, missing data directories."""

import dataclasses

import pytest

from searnn.data.registry import TASKS, load_task, task_config_class
from searnn.data.task import TaskConfig
from searnn.data.tsv import TsvConfig
from searnn.errors import ConfigError, DataError


def test_task_names_and_config_help():
    assert set(TASKS) == {"ocr", "chunking", "spelling", "translation", "tsv", "captions"}
    for name, (config_class, load) in TASKS.items():
        assert issubclass(config_class, TaskConfig) and callable(load), name
        for f in dataclasses.fields(config_class):
            assert f.metadata.get("help"), f"{name}.{f.name} has no help"
        config_class()  # every field has a default


def test_unknown_task_lists_valid_names():
    with pytest.raises(ConfigError) as err:
        load_task("ocrr")
    msg = str(err.value)
    assert "ocrr" in msg
    for name in TASKS:
        assert name in msg
    with pytest.raises(ConfigError, match="valid: captions, chunking, ocr"):
        task_config_class("nope")


def test_wrong_config_class_is_rejected():
    with pytest.raises(ConfigError, match="OcrConfig"):
        load_task("ocr", TsvConfig())


@pytest.mark.parametrize(
    ("name", "expects"),
    [
        ("ocr", "letter.data"),
        ("chunking", "train.txt"),
        ("spelling", "sentences.train.txt"),
        ("translation", "train.lc.norm.tok"),
    ],
)
def test_missing_data_dir_says_what_to_pass(tmp_path, name, expects):
    config_class = task_config_class(name)
    with pytest.raises(DataError) as err:
        load_task(name, config_class(data_dir=str(tmp_path / "missing")))
    assert "--data-dir DIR containing" in str(err.value) and expects in str(err.value)
    # an existing but empty directory: the missing file is named
    with pytest.raises(DataError) as err:
        load_task(name, config_class(data_dir=str(tmp_path)))
    assert str(tmp_path) in str(err.value) and expects in str(err.value)
