"""Run directories: resolved config, vocabularies, checkpoints (durable atomic writes, safe loading), the
metrics log; the run-directory lock lives in :mod:`searnn.runlock` (re-exported here).

Checkpoints hold only tensors, plain containers and primitives and are read back with
``torch.load(weights_only=True)`` through :func:`load_checkpoint`, so that a crafted ``.pt`` file cannot run
code. Every file that matters is written through :mod:`searnn.fileio` (temp file, fsync, rename, fsync of
the directory); ``last.pt`` keeps its previous version as ``last.prev.pt``, used when ``last.pt`` is unreadable.
"""

from __future__ import annotations

import json
import os
import pickle
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from searnn.config import RunConfig, build_config, read_text_file
from searnn.errors import ConfigError, DataError, SearnnError
from searnn.fileio import atomic_write_text as atomic_write_text  # re-exported: the one atomic-write helper
from searnn.fileio import atomic_write_with, keep_previous
from searnn.runlock import LOCK as LOCK
from searnn.runlock import acquire_lock as acquire_lock
from searnn.runlock import lock_holder as lock_holder
from searnn.runlock import make_run_dir
from searnn.runlock import release_lock as release_lock

CONFIG, METRICS_LOG, RESULTS, LAST, BEST = "config.yaml", "metrics.jsonl", "results.json", "last.pt", "best.pt"
LAST_PREV = "last.prev.pt"

# Options that may change when a run is resumed (they do not change what is being trained).
RESUMABLE_CHANGES = {
    "epochs", "progress", "device", "threads", "checkpoint_minutes", "eval_batch_size", "time_budget",
    "early_stop", "nproc", "precision", "static_shapes",
    "test_beam", "len_norm_choices",  # evaluation only (searnn.beam_test)
}


# -- checkpoints ---------------------------------------------------------------------------------------


class CheckpointError(SearnnError):
    """A checkpoint that cannot be read (missing, corrupt, truncated, or holding more than tensors and plain
    data). ``path`` is the file, ``reason`` a short phrase (``truncated or corrupt (EOFError)``)."""

    def __init__(self, message: str, path: Path, reason: str):
        super().__init__(message)
        self.path, self.reason = path, reason


def check_finite(model_state: dict[str, Any], path: Path) -> None:
    """Refuse to write a model whose parameters hold NaN or infinity (second line of defence behind the
    training loop's check after each optimizer step)."""
    for name, value in model_state.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise SearnnError(f"refusing to write {path}: parameter {name} holds non-finite values "
                              "(the model diverged; lower --lr)")


def atomic_save(obj: dict[str, Any], path: Path) -> None:
    """``torch.save`` durably to a temporary file, then rename: a kill never leaves a half-written checkpoint.
    ``obj`` must hold only tensors, plain containers and primitives (it is read back with ``weights_only``);
    its ``model`` entry, if any, must be finite."""
    path = Path(path)
    if isinstance(obj.get("model"), dict):
        check_finite(obj["model"], path)
    atomic_write_with(lambda fh: torch.save(obj, fh), path)


def save_last(obj: dict[str, Any], run_dir: Path) -> None:
    """Write ``last.pt``, keeping the version it replaces as ``last.prev.pt`` (the fallback when ``last.pt``
    turns out to be unreadable)."""
    path = Path(run_dir) / LAST
    keep_previous(path, Path(run_dir) / LAST_PREV)
    atomic_save(obj, path)


def _first_sentence(text: str, limit: int = 120) -> str:
    first = (text.strip().splitlines() or [""])[0]
    first = first.split(". ")[0].rstrip(".")
    return first[:limit]


def _unreadable(path: Path, device: torch.device | str) -> tuple[dict[str, Any] | None, str, bool]:
    """``(data, "", False)`` for a good checkpoint, else ``(None, reason, refused)`` where ``refused`` says that
    the weights-only unpickler refused what the file holds (a foreign or crafted file, or garbage)."""
    if not path.is_file():
        return None, "missing", False
    try:
        data = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as e:
        detail = _first_sentence(str(e).split("WeightsUnpickler error:")[-1])
        return None, f"not a plain searnn checkpoint: {detail or 'unreadable'}", True
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError) as e:
        return None, f"truncated or corrupt ({_first_sentence(str(e)) or type(e).__name__})", False
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
        return None, "not a searnn checkpoint (no model state)", False
    return data, "", False


def load_checkpoint(path: Path, device: torch.device | str = "cpu", what: str = "checkpoint") -> dict[str, Any]:
    """Read a checkpoint written by searnn, safely: ``torch.load(weights_only=True)`` never runs code from the
    file, and anything but a dict of tensors and plain data is refused with a one-line :class:`CheckpointError`
    naming the file (``what`` prefixes the message: the option or command it came from, e.g. ``--warm-start``)."""
    path = Path(path)
    data, reason, refused = _unreadable(path, device)
    if data is not None:
        return data
    prefix = f"{what}: " if what else ""
    if reason == "missing":
        raise CheckpointError(f"{prefix}no checkpoint at {path}", path, reason)
    if refused:
        message = (f"{prefix}refused to load {path} ({reason}): it is corrupt, or holds objects that could run "
                   "code when loaded; delete it or retrain, do not load it otherwise")
    else:
        message = f"{prefix}cannot read {path}: {reason}; delete it or retrain"
    raise CheckpointError(message, path, reason)


def load_last(run_dir: Path, device: torch.device | str, warn: Callable[[str], None]) -> dict[str, Any]:
    """Read ``last.pt``; when it is unreadable, fall back to ``last.prev.pt`` (with a warning). Both unreadable:
    a one-line error naming them."""
    last, prev = Path(run_dir) / LAST, Path(run_dir) / LAST_PREV
    try:
        return load_checkpoint(last, device, what="resume")
    except CheckpointError as e:
        first = e
    try:
        data = load_checkpoint(prev, device, what="resume")
    except CheckpointError as e:
        verb = "refused to load" if "refused to load" in str(first) else "cannot read"
        if e.reason == "missing":
            rest = f"no {LAST_PREV} to fall back to"
        else:
            rest = f"its fallback {prev} is unreadable too ({e.reason})"
        raise CheckpointError(f"cannot resume {run_dir}: {verb} {last} ({first.reason}); {rest}; delete {run_dir} "
                              "to start over", last, first.reason) from None
    warn(f"warning: {last} is unreadable ({first.reason}); resuming from the previous checkpoint {prev}")
    return data


def has_checkpoint(run_dir: Path) -> bool:
    """Whether a run directory has something to resume from (``last.pt`` or its fallback)."""
    return (Path(run_dir) / LAST).exists() or (Path(run_dir) / LAST_PREV).exists()


def records_only(run_dir: Path) -> bool:
    """Whether a run directory holds a run's ``config.yaml`` and ``results.json`` but no checkpoint to resume
    from (a run copied back from ``searnn experiment --archive``, or one whose checkpoints were deleted)."""
    run_dir = Path(run_dir)
    return (run_dir / CONFIG).exists() and (run_dir / RESULTS).exists() and not has_checkpoint(run_dir)


def config_differences(old: RunConfig, new: RunConfig) -> list[str]:
    """Keys whose values differ between two configs, ignoring :data:`RESUMABLE_CHANGES`."""
    a, b = old.to_dict(), new.to_dict()
    diffs = []
    for section in a:
        for key in sorted(set(a[section]) | set(b.get(section, {}))):
            if key in RESUMABLE_CHANGES or key == "run_dir":
                continue
            va, vb = a[section].get(key), b.get(section, {}).get(key)
            if va != vb:
                diffs.append(f"{key}: saved {va!r}, now {vb!r}")
    return diffs


def saved_config_values(run_dir: Path) -> dict[str, Any]:
    """The flat options of the ``config.yaml`` a run directory holds; a corrupt or truncated file is a one-line
    ConfigError naming it."""
    path = Path(run_dir) / CONFIG
    advice = f"restore it, or delete {run_dir} to start over"
    try:
        text = read_text_file(path, "run config (config.yaml)")
    except ConfigError as e:
        raise ConfigError(f"{e}; {advice}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: corrupt run config (invalid YAML{where}); {advice}") from None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), dict) for k in ("train", "task", "model")):
        raise ConfigError(f"{path}: corrupt or truncated run config (expected the sections train, task, model, "
                          f"objective); {advice}")
    flat: dict[str, Any] = {}
    for value in data.values():
        if isinstance(value, dict):
            flat.update({str(k): v for k, v in value.items()})
    return flat


def load_saved_config(run_dir: Path) -> RunConfig:
    """The :class:`RunConfig` saved in a run directory (see :func:`saved_config_values`)."""
    try:
        return build_config(saved_config_values(run_dir))
    except ConfigError as e:
        if str(e).startswith(str(Path(run_dir) / CONFIG)):
            raise
        raise ConfigError(f"{Path(run_dir) / CONFIG}: invalid run config ({e}); restore it, or delete {run_dir} "
                          "to start over") from None


def _different_config(run_dir: Path, diffs: list[str]) -> ConfigError:
    return ConfigError(f"{run_dir} holds a run with a different config ({'; '.join(diffs)}); "
                       "use another --run-dir, or delete that directory to start over")


def prepare_run_dir(cfg: RunConfig) -> tuple[Path, bool]:
    """Create the run dir or check that it holds the same run. Returns (path, resuming)."""
    run_dir = Path(cfg.train.run_dir)
    cfg_path = run_dir / CONFIG
    if cfg_path.exists():
        diffs = config_differences(load_saved_config(run_dir), cfg)
        if diffs:
            raise _different_config(run_dir, diffs)
        resuming = has_checkpoint(run_dir)
    else:
        make_run_dir(run_dir)
        resuming = False
    atomic_write_text(cfg.to_yaml(), cfg_path)
    return run_dir, resuming


def finished_results(cfg: RunConfig, warn: Callable[[str], None]) -> dict[str, Any] | None:
    """The ``results.json`` of a run that is finished for ``cfg`` (it covers ``cfg.train.epochs`` or stopped
    early), else ``None``. Reads only ``config.yaml`` (which must match ``cfg``) and ``results.json``, so that
    rerunning a finished run loads no checkpoint. An unreadable ``results.json`` gives a warning and ``None``:
    training then re-evaluates the best checkpoint and writes it again."""
    run_dir = Path(cfg.train.run_dir)
    path = run_dir / RESULTS
    if not (path.exists() and (run_dir / CONFIG).exists()):
        return None
    diffs = config_differences(load_saved_config(run_dir), cfg)
    if diffs:
        raise _different_config(run_dir, diffs)
    try:
        results = read_json(path)
    except DataError as e:
        warn(f"warning: {e}; evaluating the best checkpoint again to rewrite it")
        return None
    if not isinstance(results, dict):
        warn(f"warning: {path} is not a results object; evaluating the best checkpoint again to rewrite it")
        return None
    epochs = results.get("epochs")
    if results.get("stopped") or (isinstance(epochs, int) and epochs >= cfg.train.epochs):
        return results if has_requested_beam_test(cfg, results) else None
    return None


def has_requested_beam_test(cfg: RunConfig, results: dict[str, Any]) -> bool:
    """Whether ``results`` hold the beam test ``cfg`` asks for (``--test-beam``, ``--len-norm-choices``). A
    finished run asked for another one is not finished: it resumes from ``last.pt`` straight to the final
    evaluation, which adds the beam test (:mod:`searnn.beam_test`) without training further."""
    from searnn.beam_test import len_norm_choices

    t = cfg.train
    if not t.test_beam:
        return True
    beam = results.get("test_beam")
    if not isinstance(beam, dict) or beam.get("beam") != t.test_beam:
        return False
    tried = beam.get("valid_by_len_norm")
    return isinstance(tried, dict) and list(tried) == [str(c) for c in len_norm_choices(t)]


def capture_rng() -> tuple[Any, ...]:
    """The generators' states as they are (cheap: no conversion), for :func:`rng_state` to convert later.
    The training loop takes one before every batch, and converts it only if that batch is interrupted."""
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    return torch.get_rng_state(), random.getstate(), np.random.get_state(), cuda


def rng_state(captured: tuple[Any, ...] | None = None) -> dict[str, Any]:
    """The torch (CPU and, when in use, CUDA), python and numpy RNG states as tensors and plain
    lists/ints/floats (``weights_only`` safe): the current ones, or those of a :func:`capture_rng`."""
    torch_state, python_state, numpy_state, cuda = captured if captured is not None else capture_rng()
    version, internal, gauss = python_state
    kind, keys, pos, has_gauss, cached = numpy_state
    state: dict[str, Any] = {
        "torch": torch_state,
        "python": {"version": int(version), "internal": [int(x) for x in internal], "gauss": gauss},
        "numpy": {"kind": str(kind), "keys": [int(x) for x in keys], "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
    }
    if cuda is not None:
        state["cuda"] = cuda  # dropout and sampling on the GPU draw from these
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the states of :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    py, npy = state["python"], state["numpy"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss"]))
    np.random.set_state((npy["kind"], np.asarray(npy["keys"], dtype=np.uint32), npy["pos"], npy["has_gauss"],
                         npy["cached"]))


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Append one record and fsync it (an epoch's record is as durable as the checkpoint written after it)."""
    with path.open("a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _parse_jsonl(path: Path) -> tuple[list[dict[str, Any]], bool]:
    """Records of a JSON-lines file, and whether a torn last line (a write cut short) was dropped. A bad line
    anywhere else is a :class:`DataError` naming the file and line."""
    if not path.exists():
        return [], False
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read ({e}); delete it or restore it") from None
    lines = text.splitlines()
    records: list[dict[str, Any]] = []
    torn = False
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
        except ValueError:
            if lineno == len(lines):
                torn = True
                break
            raise DataError(f"{path}:{lineno}: invalid JSON record; repair or delete that line") from None
        records.append(record)
    return records, torn


def truncate_jsonl(path: Path, keep: int, warn: Callable[[str], None] | None = None) -> None:
    """Keep the first ``keep`` records: drops epochs logged after the checkpoint a run resumes from, and a torn
    last line (with a warning through ``warn``)."""
    records, torn = _parse_jsonl(path)
    if torn and warn is not None:
        warn(f"warning: {path}: dropped a torn last line (a write was cut short)")
    if torn or len(records) > keep:
        atomic_write_text("".join(json.dumps(r) + "\n" for r in records[:keep]), path)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines file (a torn last line is left out); a bad line elsewhere is a DataError."""
    return _parse_jsonl(path)[0]


def read_json(path: Path, what: str = "") -> Any:
    """Parse a JSON file; unreadable or invalid JSON is a one-line :class:`DataError` naming the file."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read ({e}){what}") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: invalid JSON (line {e.lineno}: {e.msg}), corrupt or truncated{what}") from None
