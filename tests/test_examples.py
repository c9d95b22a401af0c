"""The scripts of examples/ run (a user's own model trained with SeaRNN / token smoothing) and print their
validation metric."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize("script", ["own_model_searnn.py", "own_model_smoothing.py"])
def test_example_trains_and_prints_its_validation_metric(script: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / script), "--epochs", "1", "--train-size", "64"],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    match = re.search(r"validation edit error (\d+\.\d)%", proc.stdout)
    assert match, proc.stdout
    assert float(match.group(1)) >= 0.0
