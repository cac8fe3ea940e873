"""User-facing errors of the command line: each carries a one-line message and an exit code."""

from __future__ import annotations


class UsageError(Exception):
    """Bad input a person must fix (a missing file, an absent column, ...); exit code 2."""

    exit_code = 2
