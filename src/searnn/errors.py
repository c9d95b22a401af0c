"""User-facing errors: the CLI prints their message and exits non-zero, without a traceback."""


class SearnnError(Exception):
    """An error caused by the user's input (data, config, command line), with a clear message."""


class DataError(SearnnError):
    """Malformed or missing data. Messages name the file and, where relevant, the line number."""


class ConfigError(SearnnError):
    """Unknown or invalid configuration key/value."""


def unknown_name(kind: str, name: str, valid: list[str] | tuple[str, ...]) -> ConfigError:
    """Error for an unknown registered name, listing the valid ones."""
    return ConfigError(f"unknown {kind} {name!r}; valid: {', '.join(sorted(valid))}")
