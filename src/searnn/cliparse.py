"""Argument-parsing pieces shared by every ``searnn`` subcommand.

* :class:`CliParser`: an :class:`argparse.ArgumentParser` without prefix abbreviations (``--epoch`` is not
  taken for ``--epochs``) whose errors raise :class:`UsageError` instead of printing the usage and exiting,
  so that :func:`searnn.cli.main` prints them as one line on stderr (exit status 2);
* :class:`Switch`: a boolean option usable as a bare switch (``--lazy``, ``--no-lazy``) or with a value
  (``--lazy true``, ``--lazy off``).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any, NoReturn

from searnn.errors import ConfigError


class UsageError(ConfigError):
    """A malformed command line (unknown option, missing argument, ...); the CLI exits with status 2."""


class CliParser(argparse.ArgumentParser):
    """ArgumentParser with ``allow_abbrev=False`` whose :meth:`error` raises :class:`UsageError`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


class Switch(argparse.BooleanOptionalAction):
    """``--name`` (true), ``--no-name`` (false), or ``--name VALUE`` with VALUE parsed later (true/false,
    yes/no, on/off, 1/0). The parsed value is ``True``, ``False`` or the string given."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, **kwargs)
        self.nargs = "?"

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        negative = bool(option_string and option_string.startswith("--no-"))
        if negative:
            if values is not None:
                parser.error(f"{option_string} takes no value (got {values!r}); use {option_string[:2]}"
                             f"{option_string[5:]} {values}")
            setattr(namespace, self.dest, False)
        else:
            setattr(namespace, self.dest, True if values is None else values)
