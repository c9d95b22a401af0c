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
import math
import re
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from searnn.errors import ConfigError
from searnn.ranges import check_value, flag

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
    test_beam: int = field(
        default=0,
        metadata={"help": "after training, also score test with beam search of this size, the length normalisation "
                  "chosen on validation among --len-norm-choices (results.json test_beam; 0 = off)"},
    )
    len_norm_choices: list[float] = field(
        default_factory=lambda: [0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
        metadata={"help": "length-normalisation exponents tried on validation for --test-beam (comma-separated)"},
    )
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
    precision: str = field(
        default="fp32",
        metadata={"help": "fp32 | bf16 | fp16: autocast of the training step on CUDA (fp16 with a gradient "
                  "scaler); bf16 is also allowed on CPU, fp16 is CUDA-only"},
    )
    nproc: int = field(
        default=1,
        metadata={"help": "train with N data-parallel processes on this machine (launches torchrun; "
                  "--batch-size stays the global batch)"},
    )

    def __post_init__(self) -> None:
        if self.optimizer not in ("adam", "sgd"):
            raise ConfigError(f"unknown --optimizer {self.optimizer!r}; valid: adam, sgd")
        if self.lr_schedule not in ("none", "plateau"):
            raise ConfigError(f"unknown --lr-schedule {self.lr_schedule!r}; valid: none, plateau")
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise ConfigError(f"unknown --precision {self.precision!r}; valid: fp32, bf16, fp16")
        for f in fields(self):
            check_value(f.name, getattr(self, f.name))
        if not self.len_norm_choices:
            raise ConfigError("--len-norm-choices needs at least one value")


def early_stop_due(epochs_done: int, best_epoch: int, patience: int) -> bool:
    """The ``early_stop`` rule: after ``epochs_done`` epochs, with the best validation score at epoch
    ``best_epoch`` (1-based), training stops when ``patience`` (> 0) epochs in a row brought no gain. The trainer
    applies it; ``searnn report`` uses it to tell a run that early stopping ended from one its epoch cap ended."""
    return patience > 0 and epochs_done - best_epoch >= patience


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
            number = float(value)
            if not math.isfinite(number):
                raise ConfigError(f"option {flag(key)}: expected a finite number, got {value!r}")
            return number
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
        raise ConfigError(f"option {flag(key)}: expected {name}, got {value!r}") from None
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


def unknown_key(key: str, valid: list[str], as_flags: bool = False, owner: str = "") -> ConfigError:
    """Error for an unknown option ``key``: the option's owner when it belongs to another task or objective
    (``owner``, see :func:`option_owner`), else the closest valid names. ``as_flags``: spell names as
    command-line options (``--lr-schedule``) rather than YAML keys."""
    show = flag if as_flags else repr
    if owner:
        return ConfigError(f"{show(key)} belongs to {owner}")
    close = difflib.get_close_matches(key, valid, n=3, cutoff=0.6)
    names = [flag(v) if as_flags else v for v in (close or sorted(valid))]
    hint = f"; did you mean {', '.join(names)}?" if close else f"; valid: {', '.join(names)}"
    return ConfigError(f"unknown option {show(key)}{hint}")


def option_owner(key: str, task: str, objective: str) -> str:
    """``'--objective searnn'`` (or ``'--task ocr'``, several joined by ``/``) when ``key`` is an option of
    other objectives or tasks than the active ones; ``''`` when no registered config class has it."""
    from searnn.data.registry import TASKS
    from searnn.objectives import OBJECTIVES

    objectives = [name for name, cls in OBJECTIVES.items()
                  if name != objective and key in {f.name for f in fields(cls.config_class)}]
    if objectives:
        return f"--objective {' / '.join(objectives)} (this run has --objective {objective})"
    tasks = [name for name, (cls, _) in TASKS.items() if name != task and key in {f.name for f in fields(cls)}]
    if tasks:
        return f"--task {' / '.join(tasks)} (this run has --task {task})"
    return ""


def yaml_error(path: str | Path, err: yaml.YAMLError) -> str:
    """A one-line message for a YAML syntax error: ``FILE:LINE: invalid YAML (problem)``."""
    mark = getattr(err, "problem_mark", None)
    where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    return f"{where}: invalid YAML ({problem})"


def read_text_file(path: str | Path, what: str) -> str:
    """The UTF-8 text of ``path`` (a leading byte-order mark removed); a missing, unreadable, binary or
    non-UTF-8 file raises :class:`ConfigError` naming the file (and line) and ``what`` was expected."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{p}: is a directory, expected a {what}")
    if not p.is_file():
        raise ConfigError(f"{what} not found: {p}")
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise ConfigError(f"{p}: cannot read ({e.strerror})") from None
    if b"\0" in raw:
        raise ConfigError(f"{p}: a binary file, expected a {what} (text)")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ConfigError(f"{p}:{line}: not valid UTF-8 text, expected a {what}") from None


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a config file into a flat ``{key: value}`` dict (sections are flattened)."""
    p = Path(path)
    text = read_text_file(p, "config file")
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise ConfigError(yaml_error(p, e)) from None
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
            raise unknown_key(key, list(table), owner=option_owner(key, task, objective))
        section, cls, f = table[key]
        per_section[section][key] = coerce(value, field_type(cls, f), key)
        check_value(key, per_section[section][key])
    try:
        built = {s: classes[s](**per_section[s]) for s in SECTIONS}
    except ConfigError as e:  # a section's own check: name the option as it is typed (--rollin)
        raise ConfigError(flag_names(str(e), set(table))) from None
    except TypeError as e:  # pragma: no cover - guarded by the key check above
        raise ConfigError(str(e)) from None
    return RunConfig(**built)


_SUBJECT = re.compile(r"^(?:model\.)?([a-z][a-z0-9_]*)(?= must| and | ')|(?<= and )([a-z][a-z0-9_]*)(?= must)"
                      r"|(?<=^unknown )([a-z][a-z0-9_]*)(?= ')")


def flag_names(message: str, options: set[str]) -> str:
    """Rewrite the option a config check names (``unknown rollin 'x'``, ``model.hidden must ...``) the way
    it is typed on the command line (``unknown --rollin 'x'``); other words are left alone."""

    def swap(match: re.Match[str]) -> str:
        name = next(g for g in match.groups() if g)
        return flag(name) if name in options else match.group(0)

    return _SUBJECT.sub(swap, message)


def load_run_config(path: str | Path) -> RunConfig:
    """Load a run directory's saved ``config.yaml``."""
    return build_config(read_yaml(path))
