"""Run directories: resolved config, vocabularies, checkpoints (atomic writes), metrics log."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from searnn.config import RunConfig, load_run_config
from searnn.errors import ConfigError, SearnnError

CONFIG, METRICS_LOG, RESULTS, LAST, BEST = "config.yaml", "metrics.jsonl", "results.json", "last.pt", "best.pt"
LOCK = "train.lock"

# Options that may change when a run is resumed (they do not change what is being trained).
RESUMABLE_CHANGES = {
    "epochs", "progress", "device", "threads", "checkpoint_minutes", "eval_batch_size", "time_budget",
    "early_stop",
}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def acquire_lock(run_dir: Path) -> Path:
    """Claim ``run_dir`` for this process (``train.lock`` holding the PID). Two processes training into one
    run directory would overwrite each other's checkpoints; the second one gets a clear error instead. A
    lock left by a process that no longer exists (killed with SIGKILL) is taken over."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                pid = int(path.read_text().strip() or 0)
            except (OSError, ValueError):
                pid = 0
            if pid and pid != os.getpid() and _alive(pid):
                raise SearnnError(
                    f"{run_dir} is being trained by process {pid} (lock file {path}); wait for it to finish "
                    "or stop it; if no such run is going on, delete the lock file"
                ) from None
            path.unlink(missing_ok=True)  # stale lock
            continue
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        return path
    raise SearnnError(f"could not create the lock file {path}")


def release_lock(path: Path) -> None:
    """Remove a lock taken by :func:`acquire_lock` (only if this process still owns it)."""
    try:
        if int(path.read_text().strip() or 0) == os.getpid():
            path.unlink(missing_ok=True)
    except (OSError, ValueError):
        pass


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file then rename, so a kill never leaves a half-written checkpoint."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def atomic_write_text(text: str, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


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


def prepare_run_dir(cfg: RunConfig) -> tuple[Path, bool]:
    """Create the run dir or check that it holds the same run. Returns (path, resuming)."""
    run_dir = Path(cfg.train.run_dir)
    cfg_path = run_dir / CONFIG
    if cfg_path.exists():
        saved = load_run_config(cfg_path)
        diffs = config_differences(saved, cfg)
        if diffs:
            raise ConfigError(
                f"{run_dir} holds a run with a different config ({'; '.join(diffs)}); "
                "use another --run-dir, or delete that directory to start over"
            )
        resuming = (run_dir / LAST).exists()
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        resuming = False
    atomic_write_text(cfg.to_yaml(), cfg_path)
    return run_dir, resuming


def rng_state() -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    with path.open("a") as f:
        f.write(json.dumps(record) + "\n")


def truncate_jsonl(path: Path, keep: int) -> None:
    """Keep the first ``keep`` records: drops epochs logged after the checkpoint a run resumes from."""
    records = read_jsonl(path)
    if len(records) > keep:
        atomic_write_text("".join(json.dumps(r) + "\n" for r in records[:keep]), path)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
