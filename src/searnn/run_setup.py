"""Setting up a run before training: the device, the seeds, the model of the config, the vocabularies saved
with the run (and checked on resume) and the ``--warm-start`` source."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import numpy as np
import torch

from searnn import checkpoint as ckpt
from searnn import distributed, runlock
from searnn.config import RunConfig
from searnn.data.task import TaskData
from searnn.errors import SearnnError
from searnn.models import Seq2Seq


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SearnnError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
    if name != "cpu" and not name.startswith("cuda"):
        raise SearnnError(f"unknown device {name!r}; valid: auto, cpu, cuda, cuda:N")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def build_model(cfg: RunConfig, task: TaskData) -> Seq2Seq:
    """The model of ``cfg.model.arch`` (``rnn``: :class:`Seq2Seq`; ``transformer``: the step-protocol
    :class:`searnn.models.transformer.Transformer`, same constructor arguments)."""
    args = (cfg.model, [len(v) for v in task.src_vocabs], task.src_feature_dim, len(task.tgt_vocab))
    if cfg.model.arch == "transformer":
        from searnn.models.transformer import Transformer

        return Transformer(*args)  # type: ignore[return-value]
    return Seq2Seq(*args)


def save_vocabs(run_dir: Path, task: TaskData) -> None:
    data = {"tgt": task.tgt_vocab.to_json(), "src": [v.to_json() for v in task.src_vocabs]}
    ckpt.atomic_write_text(json.dumps(data), run_dir / "vocab.json")


def check_vocabs(run_dir: Path, task: TaskData) -> None:
    """The task rebuilt from the config must give the vocabularies the model was trained with."""
    path = run_dir / "vocab.json"
    if not path.exists():
        return
    saved = ckpt.read_json(path, what="; delete it and run again to rewrite it from the data")
    now = {"tgt": task.tgt_vocab.to_json(), "src": [v.to_json() for v in task.src_vocabs]}
    if saved != now:
        raise SearnnError(f"{run_dir}: the data gives different vocabularies than the saved model's")


def check_warm_start(source: str) -> None:
    """``--warm-start`` (when set) must name a checkpoint file or a run dir holding ``best.pt``.

    A run dir that another process is training right now is refused: its ``best.pt`` is only the best so
    far and is rewritten under the new run (e.g. a grid warm-starting from a run of another grid that has
    not finished). Naming the checkpoint file itself takes it as it is."""
    if not source:
        return
    path = Path(source)
    target = path / ckpt.BEST if path.is_dir() else path
    if not target.is_file():
        raise SearnnError(f"--warm-start {source}: no checkpoint at {target}")
    if path.is_dir() and (pid := runlock.lock_holder(path)) is not None:
        raise SearnnError(f"--warm-start {source}: that run is still being trained by {runlock.holder_name(pid)}, "
                          f"so its {ckpt.BEST} is only the best so far; wait for it to finish, or pass {target} "
                          "to start from that checkpoint as it is now")


def log(msg: str) -> None:
    """A progress line on stderr (rank 0 only in a distributed job)."""
    if distributed.current().is_main:
        print(msg, file=sys.stderr, flush=True)
