"""The task registry: name -> (config class, loader).

``TASKS[name] = (ConfigClass, load)`` where ``load(config) -> TaskData``; :func:`load_task` looks a task up
by name and loads it (with the default config when none is given).
"""

from __future__ import annotations

from collections.abc import Callable

from searnn.data import captions, chunking, ocr, spelling, translation, tsv
from searnn.data.task import TaskConfig, TaskData
from searnn.errors import ConfigError, unknown_name

TASKS: dict[str, tuple[type[TaskConfig], Callable[..., TaskData]]] = {
    "ocr": (ocr.OcrConfig, ocr.load),
    "chunking": (chunking.ChunkingConfig, chunking.load),
    "spelling": (spelling.SpellingConfig, spelling.load),
    "translation": (translation.TranslationConfig, translation.load),
    "tsv": (tsv.TsvConfig, tsv.load),
    "captions": (captions.CaptionsConfig, captions.load),
}


def task_config_class(name: str) -> type[TaskConfig]:
    """The config dataclass of task ``name`` (raises :class:`ConfigError` listing the valid names)."""
    if name not in TASKS:
        raise unknown_name("task", name, list(TASKS))
    return TASKS[name][0]


def load_task(name: str, cfg: TaskConfig | None = None) -> TaskData:
    """Load task ``name`` with ``cfg`` (an instance of its config class; ``None`` = the defaults)."""
    config_class = task_config_class(name)
    if cfg is None:
        cfg = config_class()
    elif not isinstance(cfg, config_class):
        raise ConfigError(
            f"task {name!r} needs a {config_class.__name__}, got a {type(cfg).__name__}"
        )
    return TASKS[name][1](cfg)
