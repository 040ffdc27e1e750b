"""No command destroys data it did not create: the overwrite rule of every folder an mtr command writes whole.

A folder is replaced only when it is empty, or the same command's earlier output (its `.mtr-output.json`
marker), or with --overwrite; never when it is, holds or sits inside one of the command's inputs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mtr.cli import main
from mtr.errors import InputError
from mtr.io import OUTPUT_MARKER

SMALL_WORLD = ["--users", "40", "--days", "6", "--seed", "1"]


def simulate(out: Path, *extra: str) -> None:
    main(["simulate", *SMALL_WORLD, "--out", str(out), *extra])


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` and its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture()
def events(tmp_path: Path) -> Path:
    simulate(tmp_path / "events")
    return tmp_path / "events"


def user_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "notes"
    (folder / "sub").mkdir(parents=True)
    (folder / "thesis.txt").write_text("three years of work")
    (folder / "sub" / "data.csv").write_text("a,b\n1,2\n")
    return folder


# (case, command line with {events}, {user} and {tmp} placeholders, the error it must give)
REFUSED: list[tuple[str, list[str], str]] = [
    ("build-dataset into its events", ["build-dataset", "--events", "{events}", "--out", "{events}"], "overlaps"),
    (
        "build-dataset inside its events",
        ["build-dataset", "--events", "{events}", "--out", "{events}/dataset"],
        "overlaps the input",
    ),
    ("simulate into a user's folder", ["simulate", *SMALL_WORLD, "--out", "{user}"], "written by no mtr command"),
    ("simulate onto a file", ["simulate", *SMALL_WORLD, "--out", "{user}/thesis.txt"], "is a file, not a folder"),
    (
        "build-dataset into another command's output",
        ["build-dataset", "--events", "{events}", "--out", "{events2}"],
        "written by `mtr simulate`, not by `mtr build-dataset`",
    ),
]


@pytest.mark.parametrize(("case", "argv", "message"), REFUSED, ids=[c[0] for c in REFUSED])
def test_a_command_refuses_an_output_that_would_destroy_data(
    case: str, argv: list[str], message: str, events: Path, tmp_path: Path
) -> None:
    user = user_folder(tmp_path)
    events2 = tmp_path / "events2"
    simulate(events2)
    before = {folder: snapshot(folder) for folder in (user, events, events2)}
    places = {"{events}": str(events), "{user}": str(user), "{tmp}": str(tmp_path), "{events2}": str(events2)}
    filled = [_fill(arg, places) for arg in argv]
    with pytest.raises(InputError, match=message):
        main(filled)
    assert {folder: snapshot(folder) for folder in before} == before  # nothing touched


def _fill(arg: str, places: dict[str, str]) -> str:
    for key, value in places.items():
        arg = arg.replace(key, value)
    return arg


def test_a_rerun_replaces_its_own_output_and_overwrite_replaces_a_foreign_one(events: Path, tmp_path: Path) -> None:
    assert (events / OUTPUT_MARKER).is_file()
    before = snapshot(events)
    simulate(events, "--seed", "2")  # its own earlier output: replaced without a word
    after = snapshot(events)
    assert after["opportunities.parquet"] != before["opportunities.parquet"] and set(after) == set(before)
    user = user_folder(tmp_path)
    simulate(user, "--overwrite", "true")
    assert "thesis.txt" not in snapshot(user) and "meta.json" in snapshot(user)
    with pytest.raises(InputError, match="overlaps"):  # --overwrite never replaces an input
        main(["build-dataset", "--events", str(events), "--out", str(events), "--overwrite", "true"])


def test_a_killed_runs_temporary_folder_is_removed_by_the_next_run(tmp_path: Path) -> None:
    out = tmp_path / "events"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = tmp_path / f".events.tmp-{int(dead.stdout)}-0123abcd"  # its process has exited
    (orphan / "truth").mkdir(parents=True)
    alive = tmp_path / f".events.tmp-{os.getpid()}-89abcdef"  # a run still writing
    alive.mkdir()
    simulate(out)
    assert not orphan.exists() and alive.exists()


def test_an_empty_folder_is_taken(tmp_path: Path) -> None:
    out = tmp_path / "empty"
    out.mkdir()
    simulate(out)
    assert (out / OUTPUT_MARKER).is_file()


def test_the_command_line_says_it_in_one_line_and_exits_2(tmp_path: Path) -> None:
    user = user_folder(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "mtr.cli", "simulate", *SMALL_WORLD, "--out", str(user)], capture_output=True, text=True
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mtr: error: out:") and "--overwrite" in lines[0]
