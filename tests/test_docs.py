"""Documentation references: every ``NAME.md`` / ``docs/NAME.md`` mention and every section reference in the
sources, tests, benchmarks, configs and docs names a file of the repository and a heading that exists in it.

Rules (one line at a time):

* a file mention (``METHODS.md``, ``docs/METHODS.md``, ``data/*/SOURCE.md``: a capitalised name, or any name
  under ``docs/``; lower-case names such as an output ``results.md`` and URLs are not mentions) must resolve
  relative to the repository root, to ``docs/`` or to the mentioning file's folder; a bare file name may
  also name a file of that name anywhere in the repository;
* a section number right after a file mention (the section sign or the word section, then ``4.4``) and any
  further section signs later on that line must be numbered headings of that file (``## 4.`` or
  ``### 4.4``); ``FILE.md, section Name`` must be a heading containing Name;
* a section sign with no file mention before it on its line refers to the file itself in a Markdown
  file and is an error anywhere else; in Markdown files a bare numbered section reference refers to the
  file itself too (elsewhere a bare section number cites a paper and is not checked).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCANNED_DIRS = ("src", "tests", "benchmarks", "configs", "docs")
SCANNED_FILES = ("README.md", "RESULTS.md")
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".sh", ".txt", ".toml", ".cfg"}

FILE_REF = re.compile(r"(?<![\w.:/*-])((?:[\w.*-]+/)*[A-Z][\w-]*\.md|docs/(?:[\w.-]+/)*[\w-]+\.md)\b")
NUMBER = r"(\d+(?:\.\d+)*[a-z]?)"
SECTION_AFTER_FILE = re.compile(r"\A,?\s*(?:§\s*|sections?\s+)" + NUMBER)
NAMED_AFTER_FILE = re.compile(r"\A,?\s*section\s+([A-Z][\w-]*)")
SECTION_SIGN = re.compile(r"§\s*" + NUMBER)
BARE_SECTION = re.compile(r"\bsections?\s+" + NUMBER)
HEADING = re.compile(r"^#+\s+(.*)$")
HEADING_NUMBER = re.compile(r"^(?:§\s*)?" + NUMBER + r"(?:[.)]|\s|$)")


def repo_files() -> list[Path]:
    """Tracked and untracked (not ignored) files of the repository."""
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    return [ROOT / line for line in out.splitlines() if (ROOT / line).is_file()]


def scanned(files: list[Path]) -> list[Path]:
    me = Path(__file__).resolve()
    keep = []
    for path in files:
        rel = path.relative_to(ROOT)
        inside = rel.parts[0] in SCANNED_DIRS or str(rel) in SCANNED_FILES
        if inside and path.suffix in TEXT_SUFFIXES and path.resolve() != me:
            keep.append(path)
    return keep


def headings(path: Path) -> tuple[set[str], list[str]]:
    """Section numbers and heading texts of a Markdown file."""
    numbers, texts = set(), []
    for line in path.read_text(encoding="utf-8").splitlines():
        m = HEADING.match(line)
        if m:
            texts.append(m.group(1))
            n = HEADING_NUMBER.match(m.group(1))
            if n:
                numbers.add(n.group(1))
    return numbers, texts


def resolve(ref: str, source: Path, files: list[Path]) -> list[Path]:
    """The repository files a mention names (several for a glob); empty when none."""
    for base in (ROOT, ROOT / "docs", source.parent):
        found = [p for p in base.glob(ref) if p.is_file()] if "*" in ref else [base / ref]
        found = [p for p in found if p.is_file()]
        if found:
            return found
    if "/" not in ref:
        return [p for p in files if p.name == ref]
    return []


def dangling(path: Path, text: str, files: list[Path]) -> list[str]:
    """Every dangling reference of ``text`` (the content of ``path``), as ``file:line: message``."""
    problems = []
    rel = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    is_md = path.suffix == ".md"
    for lineno, line in enumerate(text.splitlines(), 1):
        where = f"{rel}:{lineno}"
        target: Path | None = path if is_md else None  # the file a bare section sign refers to
        last_end = 0
        for m in FILE_REF.finditer(line):
            found = resolve(m.group(1), path, files)
            if not found:
                problems.append(f"{where}: {m.group(1)} is not a file of the repository")
                target = None
                continue
            target = found[0] if found[0].suffix == ".md" else None
            tail = line[m.end():]
            sec, named = SECTION_AFTER_FILE.match(tail), NAMED_AFTER_FILE.match(tail)
            if target is not None and sec:
                if sec.group(1) not in headings(target)[0]:
                    problems.append(f"{where}: {m.group(1)} has no section {sec.group(1)}")
                last_end = m.end() + sec.end()
            elif target is not None and named:
                if not any(named.group(1).lower() in h.lower() for h in headings(target)[1]):
                    problems.append(f"{where}: {m.group(1)} has no section {named.group(1)!r}")
                last_end = m.end() + named.end()
            else:
                last_end = m.end()
        rest = line[last_end:] if last_end else line
        refs = [s.group(1) for s in SECTION_SIGN.finditer(rest)]
        if is_md and not FILE_REF.search(line) and not HEADING.match(line):
            refs += [s.group(1) for s in BARE_SECTION.finditer(line)]
        for number in refs:
            if target is None:
                problems.append(f"{where}: section {number} names no document")
            elif number not in headings(target)[0]:
                problems.append(f"{where}: {target.relative_to(ROOT)} has no section {number}")
    return problems


def test_every_doc_reference_resolves():
    files = repo_files()
    problems = [p for path in scanned(files) for p in dangling(path, path.read_text(encoding="utf-8"), files)]
    assert not problems, "\n".join(problems)


def test_the_checker_flags_dangling_references():
    files = repo_files()
    source = ROOT / "src" / "searnn" / "example.py"
    text = "\n".join([
        "see SEARNN.md section 4.1",  # no such file
        "see docs/METHODS.md §99",  # no such section
        "see docs/METHODS.md §2.1 and §98",  # the second section sign refers to METHODS.md too
        "as in §3",  # a section sign naming no document
        "see docs/METHODS.md §4.4, README.md, section Experiments",  # fine
        "Leblond et al., ICLR 2018, section 3",  # a paper's section: not checked in sources
    ])
    got = dangling(source, text, files)
    assert got == [
        "src/searnn/example.py:1: SEARNN.md is not a file of the repository",
        "src/searnn/example.py:2: docs/METHODS.md has no section 99",
        "src/searnn/example.py:3: docs/METHODS.md has no section 98",
        "src/searnn/example.py:4: section 3 names no document",
    ]
    # in Markdown, a bare section reference names the file itself
    md = ROOT / "RESULTS.md"
    assert dangling(md, "as in section 3 and §2", files) == []
    assert dangling(md, "as in section 42", files) == ["RESULTS.md:1: RESULTS.md has no section 42"]


def test_methods_guide_sections_are_numbered_in_order():
    numbers, _ = headings(ROOT / "docs" / "METHODS.md")
    top = sorted(int(n) for n in numbers if n.isdigit())
    assert top == list(range(1, len(top) + 1)) and len(top) >= 7
