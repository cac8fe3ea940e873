"""User-facing errors of the command line: each carries a one-line message and an exit code."""

from __future__ import annotations

import argparse
import string
from typing import Final


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


_MEMBER_ID_CHARS: Final = frozenset(string.ascii_letters + string.digits + "._-")


def member_id(text: str) -> str:
    """``argparse`` type of a worker's static group member id (Kafka's
    ``group.instance.id``): 1-249 of ``a-z A-Z 0-9 . _ -``, as Kafka checks it."""
    if not text or len(text) > 249 or not set(text) <= _MEMBER_ID_CHARS:
        raise argparse.ArgumentTypeError(
            f"must be 1-249 letters, digits, '.', '_' or '-', got {text!r}"
        )
    return text
