"""`mtr data prepare NAME --source PATH --out DIR`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def prepare_commands() -> dict[str, Callable[..., Any]]:
    """One typed command per public dataset; each reads its source folder and writes a dataset folder."""
    from mtr.data.adapters.census import prepare_census
    from mtr.data.adapters.hillstrom import prepare_hillstrom
    from mtr.data.adapters.open_bandit import prepare_open_bandit

    return {"hillstrom": prepare_hillstrom, "census": prepare_census, "open-bandit": prepare_open_bandit}
