"""Configuration: dataclass sections, YAML files and command-line overrides.

A run is described by four sections, each a dataclass whose every field has help text:

* ``train`` (:class:`TrainConfig`): task and objective names, optimiser, schedule, decoding, run dir;
* ``task``: the task's config class (e.g. :class:`searnn.data.ocr.OcrConfig`);
* ``model`` (:class:`searnn.models.ModelConfig`);
* ``objective``: the objective's config class.

Values come from the dataclass defaults, then a YAML file (either flat ``key: value`` pairs or the four
sections as mappings), then the command line (``--key value``, dashes or underscores). Keys are unique
across the active sections, so flat keys are unambiguous. An unknown key is an error that lists the
closest valid ones; so is a value of the wrong type.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from searnn.errors import ConfigError

SECTIONS = ("train", "task", "model", "objective")


@dataclass
class TrainConfig:
    """Options of the training loop (section ``train``)."""

    task: str = field(default="ocr", metadata={"help": "task name (see `searnn tasks`)"})
    objective: str = field(default="mle", metadata={"help": "training objective"})
    run_dir: str = field(default="", metadata={"help": "run directory (config, metrics, checkpoints)"})
    epochs: int = field(default=20, metadata={"help": "number of training epochs"})
    batch_size: int = field(default=64, metadata={"help": "training batch size (sequences)"})
    optimizer: str = field(default="adam", metadata={"help": "optimizer: adam | sgd"})
    lr: float = field(default=1e-3, metadata={"help": "learning rate"})
    momentum: float = field(default=0.0, metadata={"help": "SGD momentum"})
    weight_decay: float = field(default=0.0, metadata={"help": "L2 weight decay"})
    clip_norm: float = field(default=5.0, metadata={"help": "clip the global gradient norm (0 = off)"})
    lr_schedule: str = field(
        default="plateau",
        metadata={"help": "none | plateau (multiply lr by lr_decay when validation stalls lr_patience epochs)"},
    )
    lr_decay: float = field(default=0.5, metadata={"help": "factor of the plateau schedule"})
    lr_patience: int = field(default=2, metadata={"help": "epochs without validation gain before decay"})
    min_lr: float = field(default=1e-5, metadata={"help": "lower bound of the learning rate"})
    early_stop: int = field(
        default=0, metadata={"help": "stop after this many epochs without validation gain (0 = never)"}
    )
    time_budget: float = field(
        default=0.0, metadata={"help": "stop training after this many seconds of training (0 = no limit)"}
    )
    seed: int = field(default=1, metadata={"help": "random seed (model init, batch order, sampling)"})
    device: str = field(default="auto", metadata={"help": "auto | cpu | cuda | cuda:N"})
    threads: int = field(
        default=1,
        metadata={"help": "torch CPU threads; small recurrent models run fastest on 1 (and runs can go in parallel)"},
    )
    eval_batch_size: int = field(default=256, metadata={"help": "batch size for evaluation"})
    beam: int = field(default=1, metadata={"help": "beam size at evaluation (1 = greedy)"})
    len_norm: float = field(default=0.0, metadata={"help": "beam length-normalisation exponent"})
    max_decode_len: int = field(
        default=100, metadata={"help": "upper bound on decoded length for variable-length tasks"}
    )
    limit_valid: int = field(
        default=0, metadata={"help": "evaluate validation on the first N examples only (0 = all)"}
    )
    checkpoint_minutes: float = field(
        default=5.0, metadata={"help": "also checkpoint mid-epoch every this many minutes (0 = off)"}
    )
    warm_start: str = field(
        default="", metadata={"help": "initialise the model from this run dir's best checkpoint"}
    )
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})

    def __post_init__(self) -> None:
        if self.optimizer not in ("adam", "sgd"):
            raise ConfigError(f"unknown optimizer {self.optimizer!r}; valid: adam, sgd")
        if self.lr_schedule not in ("none", "plateau"):
            raise ConfigError(f"unknown lr_schedule {self.lr_schedule!r}; valid: none, plateau")
        for name in ("epochs", "batch_size", "eval_batch_size", "beam", "max_decode_len", "threads"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")


def field_type(cls: type, f: dataclasses.Field) -> Any:
    """The resolved type of a dataclass field (handles ``from __future__ import annotations``)."""
    hints = typing.get_type_hints(cls)
    return hints[f.name]


def coerce(value: Any, typ: Any, key: str) -> Any:
    """Convert ``value`` (from YAML or a command-line string) to ``typ`` or raise ConfigError."""
    origin = typing.get_origin(typ)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        return coerce(value, args[0], key)
    try:
        if typ is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
                return True
            if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if typ is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if typ is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if typ is str:
            if isinstance(value, (dict, list)):
                raise ValueError
            return str(value)
        if origin is list:
            (inner,) = typing.get_args(typ) or (str,)
            items = value if isinstance(value, list) else [v for v in str(value).split(",") if v]
            return [coerce(v, inner, key) for v in items]
    except (TypeError, ValueError):
        name = getattr(typ, "__name__", str(typ))
        raise ConfigError(f"option {key}: expected {name}, got {value!r}") from None
    return value


def flat_fields(classes: dict[str, type]) -> dict[str, tuple[str, type, dataclasses.Field]]:
    """Map each field name to (section, class, field) over the given sections; names must be unique."""
    out: dict[str, tuple[str, type, dataclasses.Field]] = {}
    for section, cls in classes.items():
        for f in fields(cls):
            if f.name in out:
                other = out[f.name][0]
                raise ConfigError(f"option {f.name!r} is defined by both {other} and {section} configs")
            out[f.name] = (section, cls, f)
    return out


def unknown_key(key: str, valid: list[str]) -> ConfigError:
    close = difflib.get_close_matches(key, valid, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; valid: {', '.join(sorted(valid))}"
    return ConfigError(f"unknown option {key!r}{hint}")


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a config file into a flat ``{key: value}`` dict (sections are flattened)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: invalid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping of options at the top level")
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if key in SECTIONS and isinstance(value, dict):
            flat.update({str(k).replace("-", "_"): v for k, v in value.items()})
        else:
            flat[str(key).replace("-", "_")] = value
    return flat


@dataclass
class RunConfig:
    """The resolved configuration of a run: one instance per section."""

    train: TrainConfig
    task: Any
    model: Any
    objective: Any

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {s: dataclasses.asdict(getattr(self, s)) for s in SECTIONS}

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_yaml())


def section_classes(task: str, objective: str) -> dict[str, type]:
    """The config classes of the four sections for a task and objective (validates the names)."""
    from searnn.data.registry import TASKS
    from searnn.errors import unknown_name
    from searnn.models import ModelConfig
    from searnn.objectives import OBJECTIVES

    if task not in TASKS:
        raise unknown_name("task", task, list(TASKS))
    if objective not in OBJECTIVES:
        raise unknown_name("objective", objective, list(OBJECTIVES))
    return {
        "train": TrainConfig,
        "task": TASKS[task][0],
        "model": ModelConfig,
        "objective": OBJECTIVES[objective].config_class,
    }


def build_config(values: dict[str, Any]) -> RunConfig:
    """Resolve a flat ``{key: value}`` dict (YAML then command line merged) into a :class:`RunConfig`.

    ``task`` and ``objective`` pick the task and objective config classes; every other key must be a
    field of exactly one active section.
    """
    values = {k.replace("-", "_"): v for k, v in values.items()}
    task = str(values.get("task", TrainConfig.task))
    objective = str(values.get("objective", TrainConfig.objective))
    classes = section_classes(task, objective)
    table = flat_fields(classes)
    per_section: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    for key, value in values.items():
        if key not in table:
            raise unknown_key(key, list(table))
        section, cls, f = table[key]
        per_section[section][key] = coerce(value, field_type(cls, f), key)
    try:
        built = {s: classes[s](**per_section[s]) for s in SECTIONS}
    except TypeError as e:  # pragma: no cover - guarded by the key check above
        raise ConfigError(str(e)) from None
    return RunConfig(**built)


def load_run_config(path: str | Path) -> RunConfig:
    """Load a run directory's saved ``config.yaml``."""
    return build_config(read_yaml(path))
