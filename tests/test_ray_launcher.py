"""``searnn experiment --launcher ray``: a 2-row smoke grid through a local Ray instance gives the local
launcher's table; a rerun skips the finished runs; bad options are one-line errors. Skipped without Ray."""

from __future__ import annotations

import contextlib
import json
import random
from pathlib import Path

import pytest
import yaml

from searnn import experiment
from searnn.cli import main as cli
from searnn.errors import ConfigError

TIMING = ("seconds_per_epoch", "train_seconds", "run_dirs")


def write_grid(root: Path) -> Path:
    """A tiny tsv task (reverse letter strings) and a 2-row grid over it."""
    rng = random.Random(1)
    files = {}
    for split, n in (("train", 48), ("valid", 12), ("test", 12)):
        lines = []
        for _ in range(n):
            word = "".join(rng.choice("abcdef") for _ in range(rng.randint(2, 6)))
            lines.append(f"{word}\t{word[::-1]}")
        (root / f"{split}.tsv").write_text("\n".join(lines) + "\n")
        files[split] = str(root / f"{split}.tsv")
    grid = {
        "name": "ray_smoke",
        "seeds": [1],
        "base": {"task": "tsv", **files, "epochs": 1, "batch_size": 16, "hidden": 8, "emb_dim": 8,
                 "tgt_emb_dim": 8, "checkpoint_minutes": 0, "max_decode_len": 10},
        "runs": [{"name": "lr1e-3", "lr": 0.001}, {"name": "lr1e-2", "lr": 0.01}],
    }
    path = root / "grid.yaml"
    path.write_text(yaml.safe_dump(grid))
    return path


def table(out: Path) -> list[dict]:
    rows = json.loads((out / "results.json").read_text())["rows"]
    return [{k: v for k, v in row.items() if k not in TIMING} for row in rows]


def test_ray_grid_equals_the_local_grid_and_is_resumable(tmp_path, capsys):
    ray = pytest.importorskip("ray")
    grid = write_grid(tmp_path)
    assert experiment.main([str(grid), "--out", str(tmp_path / "local"), "--jobs", "2"]) == 0
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        assert experiment.main([str(grid), "--out", str(tmp_path / "ray"), "--launcher", "ray"]) == 0
        first = capsys.readouterr().out
        assert "as a Ray task" in first
        assert table(tmp_path / "ray") == table(tmp_path / "local")
        assert len(table(tmp_path / "ray")) == 2 and all(r["n"] == 1 for r in table(tmp_path / "ray"))
        log = (tmp_path / "ray" / "lr1e-2" / "seed1" / experiment.LOG_FILE).read_text()
        assert ", ray) at" in log
        assert experiment.main([str(grid), "--out", str(tmp_path / "ray"), "--launcher", "ray"]) == 0
        assert "2 of 2 runs already finished (skipped)" in capsys.readouterr().out
    finally:
        ray.shutdown()


def test_ray_options_need_the_ray_launcher(tmp_path, capsys):
    grid = write_grid(tmp_path)
    with pytest.raises(ConfigError, match="--ray-address needs --launcher ray"):
        experiment.main([str(grid), "--ray-address", "auto"])
    assert cli(["experiment", str(grid), "--launcher", "ray", "--cpus-per-run", "0"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "searnn experiment: error: --cpus-per-run must be > 0, got 0"
    assert not (tmp_path / "runs").exists()


DRIVER = """
import sys
import ray
from searnn import experiment
ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
sys.exit(experiment.main([sys.argv[1], "--out", sys.argv[2], "--launcher", "ray"]))
"""


def _processes(needle: str) -> dict[int, str]:
    """Live processes whose environment or command line holds ``needle``: pid -> command line."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            env = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and (needle in cmdline or needle.encode() in env):
            found[int(entry.name)] = cmdline
    return found


@pytest.mark.slow  # about 40 s: a Ray instance and two trainers
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
def test_killing_the_driver_leaves_no_trainer(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time
    import uuid

    pytest.importorskip("ray")
    grid = write_grid(tmp_path)
    data = yaml.safe_load(grid.read_text())
    data["base"]["epochs"] = 500  # still training when the driver is killed
    grid.write_text(yaml.safe_dump(data))
    (tmp_path / "driver.py").write_text(DRIVER)
    out = tmp_path / "out"
    tag = f"SEARNN_RAY_TEST={uuid.uuid4().hex}"
    env = {**os.environ, tag.split("=")[0]: tag.split("=")[1]}
    driver = subprocess.Popen([sys.executable, str(tmp_path / "driver.py"), str(grid), str(out)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 120
        while len([c for c in _processes(str(out)).values() if "searnn.cli train" in c]) < 2:
            assert driver.poll() is None and time.monotonic() < deadline, "the trainers did not start"
            time.sleep(0.2)
        driver.kill()
        driver.wait()
        deadline = time.monotonic() + 30
        while [c for c in _processes(str(out)).values() if "searnn.cli train" in c]:
            assert time.monotonic() < deadline, "trainers outlived the driver"
            time.sleep(0.2)
    finally:
        for pid in _processes(tag):  # Ray's own helpers of the instance the killed driver had started
            if pid != os.getpid():
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
