"""`mtr data prepare NAME --source PATH --out DIR`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def prepare_commands() -> dict[str, Callable[..., Any]]:
    """One typed command per public dataset."""
    return {}
