"""The split of ``searnn.report``: reading finished runs in ``searnn.run_results``, the ``--stats`` /
``--test-against`` tables in ``searnn.seed_tables``; ``searnn.report`` keeps grouping, the results table and the
command, and still offers the moved names it offered before."""

from __future__ import annotations

import subprocess
import sys

import pytest

from searnn import report, run_results

MOVED_TO_RUN_RESULTS = ["METRICS_LOG", "RESULTS", "RUN_MARKER", "SPLITS", "TRAINING_DATA_KEYS", "RunResult",
                        "evaluation_data", "find_run_dirs", "is_run_results", "load_result", "natural_key",
                        "read_marker", "row_label", "run_versions", "select_split", "unfinished_runs", "_read_json"]


@pytest.mark.parametrize("name", MOVED_TO_RUN_RESULTS)
def test_run_results_names_are_still_importable_from_report(name):
    assert getattr(report, name) is getattr(run_results, name)


def test_every_public_name_exists():
    for module in (report, run_results):
        assert [name for name in module.__all__ if not hasattr(module, name)] == []


def test_reading_runs_needs_neither_the_report_nor_torch():
    """run_results imports no table code; report loads the seed tables only for --stats / --test-against;
    the grid file module reads run results without the report."""
    code = ("import sys\n"
            "import searnn.run_results\n"
            "print('searnn.report' in sys.modules, 'torch' in sys.modules)\n"
            "import searnn.grid\n"
            "print('searnn.report' in sys.modules)\n"
            "import searnn.report\n"
            "print('searnn.seed_tables' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False", "False", "False"]
