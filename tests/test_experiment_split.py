"""The split of ``searnn.experiment`` into ``searnn.grid`` (the grid file: parse, validate, plan),
``searnn.launch`` (local subprocesses) and ``searnn.experiment`` (results table and command): the old import
paths keep naming the same objects, and the modules depend on each other in one direction only."""

from __future__ import annotations

import subprocess
import sys

import pytest

from searnn import experiment, grid, launch, ray_launcher

MOVED_TO_GRID = ["GRID_DEFAULTS", "GRID_EXAMPLE", "RESERVED", "ROW_KEYS", "SEED_FIELD", "TOP_KEYS", "Grid",
                 "PlannedRun", "load_grid", "run_status", "warm_start_notes", "warm_start_producers"]
MOVED_TO_LAUNCH = ["LOG_FILE", "OPTIONS_FILE", "Failure", "launch", "train_command", "_prepare", "_summary",
                   "_last_line"]


@pytest.mark.parametrize("name", MOVED_TO_GRID)
def test_grid_names_are_still_importable_from_experiment(name):
    assert getattr(experiment, name) is getattr(grid, name)


@pytest.mark.parametrize("name", MOVED_TO_LAUNCH)
def test_launch_names_are_still_importable_from_experiment(name):
    assert getattr(experiment, name) is getattr(launch, name)


def test_every_public_name_of_experiment_exists():
    missing = [name for name in experiment.__all__ if not hasattr(experiment, name)]
    assert missing == []
    for module in (grid, launch):
        assert [name for name in module.__all__ if not hasattr(module, name)] == []


def test_the_modules_depend_in_one_direction():
    """grid imports neither launch nor experiment; launch does not import experiment; nor does the Ray
    launcher (it takes its helpers from launch)."""
    code = ("import sys\n"
            "import searnn.grid\n"
            "print('searnn.launch' in sys.modules, 'searnn.experiment' in sys.modules)\n"
            "import searnn.launch\n"
            "print('searnn.experiment' in sys.modules)\n"
            "import searnn.ray_launcher\n"
            "print('searnn.experiment' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False", "False", "False"]
    assert "experiment" not in ray_launcher.launch_ray.__code__.co_names
