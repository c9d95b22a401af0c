"""Do today's runs reproduce the stated headline figures? (``searnn report RUN_DIR --against FILE``).

A headlines file (JSON, e.g. ``RESULTS-headlines.json`` at the top of the repository) lists the figures the
README and RESULTS.md state, each with the grid row that re-creates it
(``configs/experiments/headlines.yaml``)::

    {
      "sigmas": 2,
      "headlines": [
        {"name": "OCR CER %, MLE, 40 epochs", "row": "ocr-mle", "split": "test",
         "stated": {"mean": 2.20, "std": 0.32, "n": 3, "seeds": [1, 2, 3], "commit": "f4c8911"},
         "where": "README Results; RESULTS.md section 3"},
        {"name": "...", "row": "...", "stated": {"mean": 23.28, "n": 1, "commit": "..."},
         "tolerance": 0.36, "tolerance_from": "2 std of the 5-seed MLE row at noise 0.3"}
      ]
    }

``split`` is ``valid`` or ``test`` (greedy decoding, the default) or ``test_beam`` (the beam-search test of a run
trained with ``--test-beam K``). For each headline, today's figure is the mean over the finished runs of that row
found under the given run directories (usually seed 1 alone). It lies *within the stated spread* when
``|today - stated mean| <= tolerance``, where the tolerance is ``sigmas`` (default 2) times the stated sample
standard deviation, or the entry's own ``tolerance`` (required when the stated figure has a single seed, so
no spread of its own: say where it comes from in ``tolerance_from``). With 2 standard deviations a correct
re-run of one seed falls outside about 1 time in 20, so one miss in a dozen rows is expected noise; several
are not.

The check prints one line per headline and returns 1 when a headline is outside its spread or has no run.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from searnn.errors import DataError

if TYPE_CHECKING:
    from searnn.report import Group

_TOP_KEYS = {"about", "grid", "sigmas", "headlines"}
_ENTRY_KEYS = {"name", "row", "split", "stated", "where", "tolerance", "tolerance_from"}
_STATED_KEYS = {"mean", "std", "n", "seeds", "commit"}
_FIELDS = {"valid": "valid", "test": "test", "test_beam": "beam_test"}
"""A headline's ``split`` -> the :class:`searnn.run_results.RunResult` field that holds today's figure."""
SPLITS = tuple(_FIELDS)
"""A headline's ``split``: the greedy validation or test figure, or the beam-search test (``--test-beam K``)."""


@dataclass(frozen=True)
class Headline:
    """One stated figure: ``row`` of the headlines grid, ``split`` one of :data:`SPLITS`, ``mean`` (± ``std`` over
    ``n`` seeds) as stated at ``commit``; ``tolerance``: the allowed distance of today's figure."""

    name: str
    row: str
    split: str
    mean: float
    std: float | None
    n: int
    commit: str
    tolerance: float
    where: str = ""


def _number(value: Any, what: str, path: Path) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DataError(f"{path}: {what} must be a finite number, got {value!r}")
    return float(value)


def load_headlines(path: str | Path) -> list[Headline]:
    """Read and validate a headlines file (see the module docstring); every problem is one clear error."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"--against {path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: not a readable JSON headlines file ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("headlines"), list) or not data["headlines"]:
        raise DataError(f"{path}: needs a non-empty list under \"headlines\"")
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise DataError(f"{path}: unknown key {unknown[0]!r}; valid: {', '.join(sorted(_TOP_KEYS))}")
    sigmas = _number(data.get("sigmas", 2), "sigmas", path)
    out, names = [], set()
    for i, entry in enumerate(data["headlines"], 1):
        where = f"headline {i}"
        if not isinstance(entry, dict):
            raise DataError(f"{path}: {where} must be an object")
        unknown = sorted(set(entry) - _ENTRY_KEYS)
        if unknown:
            raise DataError(f"{path}: {where}: unknown key {unknown[0]!r}; valid: {', '.join(sorted(_ENTRY_KEYS))}")
        for key in ("name", "row", "stated"):
            if key not in entry:
                raise DataError(f"{path}: {where} has no {key!r}")
        name = str(entry["name"])
        if name in names:
            raise DataError(f"{path}: {where}: the name {name!r} is used twice")
        names.add(name)
        where = f"headline {name!r}"
        split = entry.get("split", "test")
        if split not in SPLITS:
            raise DataError(f"{path}: {where}: split {split!r}; valid: {', '.join(SPLITS)}")
        stated = entry["stated"]
        if not isinstance(stated, dict) or "mean" not in stated:
            raise DataError(f"{path}: {where}: \"stated\" needs at least a \"mean\"")
        unknown = sorted(set(stated) - _STATED_KEYS)
        if unknown:
            raise DataError(f"{path}: {where}: unknown stated key {unknown[0]!r}; valid: "
                            f"{', '.join(sorted(_STATED_KEYS))}")
        mean = _number(stated["mean"], f"{where}: stated mean", path)
        n = int(stated.get("n", 1))
        std = None if stated.get("std") is None else _number(stated["std"], f"{where}: stated std", path)
        if "tolerance" in entry:
            tolerance = _number(entry["tolerance"], f"{where}: tolerance", path)
        elif std is not None and n > 1:
            tolerance = sigmas * std
        else:
            raise DataError(f"{path}: {where}: a figure stated without a spread (one seed) needs a \"tolerance\" "
                            "and its \"tolerance_from\"")
        if tolerance < 0:
            raise DataError(f"{path}: {where}: tolerance must be >= 0")
        out.append(Headline(name, str(entry["row"]), split, mean, std, n, str(stated.get("commit", "?")),
                            tolerance, str(entry.get("where", ""))))
    return out


@dataclass(frozen=True)
class Check:
    """Today's figure of one headline: ``today`` (mean over ``seeds``; ``None`` without a finished run)."""

    headline: Headline
    today: float | None
    seeds: tuple[int | None, ...]

    @property
    def within(self) -> bool | None:
        if self.today is None:
            return None
        return abs(self.today - self.headline.mean) <= self.headline.tolerance + 1e-9


def check(headlines: list[Headline], groups: list[Group]) -> list[Check]:
    """Match every headline with the finished runs of its row (``groups``: :func:`searnn.report.group_runs`
    by row)."""
    by_row = {g.label: g for g in groups}
    out = []
    for h in headlines:
        g = by_row.get(h.row)
        values = [] if g is None else [(r.seed, getattr(r, _FIELDS[h.split])) for r in g.runs]
        values = [(s, v) for s, v in values if v is not None]
        today = sum(v for _, v in values) / len(values) if values else None
        out.append(Check(h, today, tuple(s for s, _ in values)))
    return out


def checks_table(checks: list[Check]) -> str:
    """Markdown: headline, stated figure, allowed range, today's figure and seeds, verdict."""
    lines = ["| headline | row | stated (n, commit) | allowed | today (seeds) | within |",
             "| --- | --- | ---: | ---: | ---: | --- |"]
    for c in checks:
        h = c.headline
        stated = f"{h.mean:.2f}" + ("" if h.std is None else f" ± {h.std:.2f}") + f" ({h.n}, {h.commit[:7]})"
        allowed = f"{h.mean - h.tolerance:.2f}–{h.mean + h.tolerance:.2f}"
        if c.today is None:
            today, verdict = "no finished run", "MISSING"
        else:
            today = f"{c.today:.2f} (" + ", ".join(str(s) for s in c.seeds) + ")"
            verdict = "yes" if c.within else "NO"
        lines.append(f"| {h.name} | {h.row} | {stated} | {allowed} | {today} | {verdict} |")
    return "\n".join(lines)


def check_main(headlines_path: str, run_paths: list[str]) -> int:
    """``searnn report RUN_DIR... --against FILE``: print the checks; 0 when every headline is within."""
    from searnn.report import find_run_dirs, group_runs, load_result, versions_note

    headlines = load_headlines(headlines_path)
    groups = group_runs([load_result(d) for d in find_run_dirs(run_paths)], "row")
    checks = check(headlines, groups)
    missing = [c for c in checks if c.today is None]
    outside = [c for c in checks if c.within is False]
    print(checks_table(checks))
    print()
    print(f"{len(checks) - len(missing) - len(outside)} of {len(checks)} headlines within their stated spread"
          + (f"; outside: {', '.join(c.headline.name for c in outside)}" if outside else "")
          + (f"; no finished run: {', '.join(c.headline.row for c in missing)}" if missing else "") + ".")
    print(versions_note(groups))
    return 1 if missing or outside else 0
