"""The installed package: the wheel holds every module and the shipped data, and a regular (non-editable)
install trains from any folder.

The wheel test builds the wheel, installs it (``--no-deps``) in a fresh venv that borrows this interpreter's
installed packages (torch, numpy, ...) through a ``.pth`` file, and trains one small OCR epoch from a temporary
directory with ``PYTHONPATH`` unset. It is marked ``wheel`` (left out of a plain ``pytest``; ``make test`` runs
it after the suite).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_pyproject_lists_every_package():
    """The explicit package list of pyproject.toml names every package under src/ (and the data package)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    on_disk = {
        ".".join(init.parent.relative_to(ROOT / "src").parts) for init in (ROOT / "src").rglob("__init__.py")
    }
    assert on_disk <= listed, f"add to [tool.setuptools] packages: {sorted(on_disk - listed)}"
    assert config["package-dir"]["searnn_data"] == "data"
    assert (ROOT / "data" / "ocr").is_dir()


def test_shipped_data_dir_is_the_checkout_data():
    from searnn.data.task import REPO_DATA, shipped_data_dir

    assert shipped_data_dir() == REPO_DATA == ROOT / "data"


def _borrowed_site_dirs() -> list[str]:
    """This interpreter's site-packages folders (so the fresh venv needs no download of torch)."""
    dirs = [*site.getsitepackages(), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    if site.ENABLE_USER_SITE:
        dirs.append(site.getusersitepackages())
    out: list[str] = []
    for d in dirs:
        if d not in out and Path(d).is_dir():
            out.append(d)
    return out


@pytest.mark.wheel
def test_wheel_install_trains_ocr_from_another_folder(tmp_path):
    source = tmp_path / "source"  # a copy, so the build leaves no build/ or egg-info in the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for name in ("src", "data"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    wheels = tmp_path / "wheels"
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(source)]
    if importlib.util.find_spec("setuptools") and importlib.util.find_spec("wheel"):
        build.insert(5, "--no-build-isolation")  # build with the installed backend (else pip fetches it)
    subprocess.run(build, check=True, timeout=600)
    (wheel,) = wheels.glob("searnn-*.whl")

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                    "--no-index", str(wheel)], check=True, timeout=300)
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    (Path(purelib) / "_borrowed_site.pth").write_text("\n".join(_borrowed_site_dirs()) + "\n")

    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    where = subprocess.run([str(python), "-c", "import searnn, searnn.data.task as t; print(searnn.__file__); "
                            "print(t.REPO_DATA)"], cwd=work, env=env, capture_output=True, text=True, check=True)
    module_file, data_dir = where.stdout.split()
    assert Path(module_file).is_relative_to(venv), where.stdout  # the installed copy, not the checkout
    assert Path(data_dir).is_relative_to(venv) and (Path(data_dir) / "ocr").is_dir()

    result = subprocess.run(
        [str(venv / "bin" / "searnn"), "train", "--task", "ocr", "--epochs", "1", "--limit-train", "200",
         "--limit-valid", "50", "--hidden", "16", "--emb-dim", "16", "--tgt-emb-dim", "16", "--no-progress",
         "--run-dir", "run"],
        cwd=work, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    results = json.loads((work / "run" / "results.json").read_text())
    assert results["task"] == "ocr" and results["epochs"] == 1
