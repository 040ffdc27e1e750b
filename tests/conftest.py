"""Shared fixtures. Public data are read from $MTR_DATA_DIR (default ../shared/data)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def public_data_dir() -> Path:
    return Path(os.environ.get("MTR_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The public data folder; tests that need it skip only when the folder does not exist."""
    path = public_data_dir()
    if not path.is_dir():
        pytest.skip(f"public data folder {path} does not exist (set MTR_DATA_DIR)")
    return path
