"""User-facing errors of the command line: each carries a one-line message and an exit code."""

from __future__ import annotations

import argparse


class UsageError(Exception):
    """Bad input a person must fix (a missing file, an absent column, ...); exit code 2."""

    exit_code = 2


def positive_int(text: str) -> int:
    """``argparse`` type of an option that must be an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value
