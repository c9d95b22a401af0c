"""Provenance: which code, torch, device and processor produced a result.

Every ``results.json`` and every ``metrics.jsonl`` record carries :func:`code_version`'s dict, so a table
can say which commit made it and ``searnn report`` can warn when one table mixes code versions (a change
that only moves float rounding can move a 40-epoch result by more than the seed spread; see
``RESULTS.md``). The git commit is read from the checkout the package runs from, without running git when
it is not installed: a package installed from a wheel reports its version only. The processor
(``hardware``) is recorded because float rounding, and with it a long run's trajectory, can differ between
CPU models (or GPUs) running the same code and seed; it is reported, not compared.

Commits that differ only in the modules that read, label or tabulate finished runs (:data:`REPORTING_MODULES`)
train and evaluate identically. :func:`training_code_digest` fingerprints the rest of the package (every other
``src/searnn/**/*.py`` by its git blob hash, so the digest of a clean checkout equals that of its commit's
tree, :func:`training_code_at`), and ``searnn report`` treats runs from such commits as one code version.
"""

from __future__ import annotations

import functools
import hashlib
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

import searnn

VERSION_KEYS = ("searnn_version", "git_commit", "git_dirty", "torch_version")
"""The keys of :func:`code_version` that identify the code (the device and hardware are reported, not
compared)."""


REPORTING_MODULES = frozenset({
    "archive.py", "budget_table.py", "diagnostics_table.py", "headlines.py", "paired.py", "plot.py",
    "provenance.py", "report.py", "run_results.py", "seed_tables.py", "significance.py", "winners_table.py",
})
"""Modules of ``src/searnn/`` that only read, label or tabulate finished runs (reports, plots, archives,
significance tests, this provenance record): no number a run computes depends on them, so the training-code
digest leaves them out."""


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


@functools.lru_cache(maxsize=1)
def git_version() -> tuple[str | None, bool | None]:
    """``(commit, dirty)`` of the git checkout holding this package's source, or ``(None, None)`` when the
    package does not run from a checkout (a wheel install) or git is missing. ``dirty``: tracked files
    under ``src/`` differ from the commit (untracked files and run directories do not count)."""
    src = Path(searnn.__file__).resolve().parent
    root = _git(["rev-parse", "--show-toplevel"], src)
    if root is None or not (Path(root) / "pyproject.toml").is_file():
        return None, None
    if not src.is_relative_to((Path(root) / "src" / "searnn").resolve()):  # e.g. a wheel in a venv in the checkout
        return None, None
    commit = _git(["rev-parse", "HEAD"], Path(root))
    if commit is None:
        return None, None
    status = _git(["status", "--porcelain", "--untracked-files=no", "--", "src"], Path(root))
    return commit, bool(status) if status is not None else None


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name (Linux: ``/proc/cpuinfo``; elsewhere :func:`platform.processor`), or ``"unknown"``."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip() or "unknown"
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def hardware(device: str | torch.device | None = None) -> str:
    """What ran the numbers: the GPU's name for a CUDA device, the CPU model otherwise."""
    dev = torch.device(device) if device is not None else torch.device("cpu")
    if dev.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(dev)
    return cpu_model()


def _digest(entries: list[tuple[str, str]]) -> str:
    """12-hex digest of ``(path relative to src/searnn, git blob sha1)`` pairs, reporting modules left out."""
    kept = sorted((path, blob) for path, blob in entries
                  if path.endswith(".py") and path not in REPORTING_MODULES)
    return hashlib.sha256("\n".join(f"{blob} {path}" for path, blob in kept).encode()).hexdigest()[:12]


def _blob_sha1(data: bytes) -> str:
    """The id git gives a file's content (``git hash-object``)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@functools.lru_cache(maxsize=8)
def training_code_digest(package: Path | None = None) -> str:
    """Fingerprint of the training code this package runs (or the package directory ``package``): its ``.py``
    files less :data:`REPORTING_MODULES`, read from disk (so a wheel install and a dirty checkout have one too)."""
    root = package if package is not None else Path(searnn.__file__).resolve().parent
    entries = [(path.relative_to(root).as_posix(), _blob_sha1(path.read_bytes())) for path in root.rglob("*.py")]
    return _digest(entries)


@functools.lru_cache(maxsize=64)
def training_code_at(commit: str, checkout: Path | None = None) -> str | None:
    """:func:`training_code_digest` of ``commit`` (a full or abbreviated hash) in the checkout this package runs
    from (or the git checkout ``checkout``), or ``None`` when there is no checkout, no git or no such commit."""
    src = checkout if checkout is not None else Path(searnn.__file__).resolve().parent
    root = _git(["rev-parse", "--show-toplevel"], src)
    if root is None or not all(c in "0123456789abcdef" for c in commit.lower()) or len(commit) < 7:
        return None
    listing = _git(["ls-tree", "-r", f"{commit}^{{commit}}", "--", "src/searnn"], Path(root))
    if not listing:
        return None
    entries = []
    for line in listing.splitlines():
        meta, _, path = line.partition("\t")
        parts = meta.split()
        if len(parts) == 3 and parts[1] == "blob" and path.startswith("src/searnn/"):
            entries.append((path[len("src/searnn/"):], parts[2]))
    return _digest(entries) if entries else None


def code_version(device: str | torch.device | None = None) -> dict[str, Any]:
    """``{"searnn_version", "git_commit", "git_dirty", "training_code", "torch_version", "device",
    "hardware"}``; the git fields are ``None`` outside a checkout; ``training_code``: :func:`training_code_digest`."""
    commit, dirty = git_version()
    return {
        "searnn_version": searnn.__version__,
        "git_commit": commit,
        "git_dirty": dirty,
        "training_code": training_code_digest(),
        "torch_version": torch.__version__,
        "device": str(device) if device is not None else None,
        "hardware": hardware(device),
    }


def short_version(info: dict[str, Any]) -> str:
    """One label for a code version: ``<commit[:7]>[+dirty]`` or ``v<searnn_version>``, plus torch."""
    commit = info.get("git_commit")
    code = f"{str(commit)[:7]}{'+dirty' if info.get('git_dirty') else ''}" if commit else (
        f"v{info.get('searnn_version', '?')}")
    return f"{code} torch {info.get('torch_version', '?')}"
