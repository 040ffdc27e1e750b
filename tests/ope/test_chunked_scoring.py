"""A study scores its candidates chunk by chunk of whole decisions (bounded memory): the predictions do not depend
on the chunk size, and no decision is ever split between two chunks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

import mtr.ope.problem as problem
from mtr.cli import main
from mtr.data.candidates import read_dataset_candidates
from mtr.ope.problem import scored_candidates, split_rows
from mtr.ope.scorers import Scorer, load_scorers
from mtr.scoring.candidates import CandidateTable

QUIET = ["--wandb", "false", "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
SPLIT = "validation"
WHOLE = 10**9  # one chunk holds every candidate


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A small simulated world, its dataset (1-day embargo) and a model trained for one epoch."""
    root = tmp_path_factory.mktemp("chunked")
    paths = {name: root / name for name in ("events", "dataset", "run")}
    main(["simulate", "--users", "300", "--days", "40", "--seed", "1", "--out", str(paths["events"])])
    main(["build-dataset", "--events", str(paths["events"]), "--out", str(paths["dataset"])]
         + ["--build.embargo_days", "1", "--build.partitions", "1"])  # fmt: skip
    main(["fit", "--config", "configs/experiment/sim_mmoe.yaml", "--data.path", str(paths["dataset"])]
         + ["--trainer.default_root_dir", str(paths["run"]), "--trainer.max_epochs", "1", *QUIET])  # fmt: skip
    return paths


@pytest.fixture(scope="module")
def scorers(world: dict[str, Path]) -> list[Scorer]:
    return load_scorers([world["run"]], "last.ckpt", [SPLIT])


@pytest.fixture(scope="module")
def split(world: dict[str, Path]) -> tuple[pl.DataFrame, CandidateTable]:
    """The validation rows and their candidates from the dataset's candidates file."""
    rows, _ = split_rows(world["dataset"], SPLIT)
    return rows, CandidateTable.from_frame(read_dataset_candidates(world["dataset"], rows["row_id"]))


@pytest.fixture(scope="module")
def whole(scorers: list[Scorer], split: tuple[pl.DataFrame, CandidateTable]) -> np.ndarray:
    """Every candidate's predictions, scored in one chunk."""
    rows, candidates = split
    predicted, _ = scored_candidates(scorers, candidates, rows, SPLIT, chunk=WHOLE)
    return predicted


def recorder(monkeypatch: pytest.MonkeyPatch) -> list[pl.DataFrame]:
    """Record the candidates of each chunk that `scored_candidates` turns into model rows."""
    chunks: list[pl.DataFrame] = []
    original: Callable[..., pl.DataFrame] = problem.candidate_model_rows

    def recording(candidates: pl.DataFrame, logged: pl.DataFrame, *args: Any, **kwargs: Any) -> pl.DataFrame:
        chunks.append(candidates)
        return original(candidates, logged, *args, **kwargs)

    monkeypatch.setattr(problem, "candidate_model_rows", recording)
    return chunks


def assert_whole_decisions(chunks: list[pl.DataFrame], candidates: CandidateTable) -> None:
    """Every chunk holds whole decisions, no decision is in two chunks, and together they cover every candidate
    in group order."""
    seen: set[int] = set()
    for chunk in chunks:
        ids = set(chunk["row_id"].unique().to_list())
        assert not ids & seen, f"decisions split across chunks: {sorted(ids & seen)[:5]}"
        seen |= ids
    assert seen == set(candidates.frame["row_id"].unique().to_list())
    assert pl.concat(chunks).equals(candidates.frame)


def test_chunked_scoring_gives_the_predictions_of_one_chunk(
    scorers: list[Scorer],
    split: tuple[pl.DataFrame, CandidateTable],
    whole: np.ndarray,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rows, candidates = split
    chunks = recorder(monkeypatch)
    chunked, schema = scored_candidates(scorers, candidates, rows, SPLIT, chunk=500)
    assert chunked.shape == whole.shape == (candidates.groups.n_candidates, len(schema.objective_table))
    np.testing.assert_allclose(chunked, whole, rtol=0, atol=1e-6)
    assert np.isfinite(chunked).all()
    # The chunking was real: every chunk but the last holds at least 500 candidates, and none more than the
    # decisions that start within 500 candidates of its first (so at most 499 plus the largest decision).
    groups = candidates.groups
    largest = int(np.diff(np.append(groups.starts, groups.n_candidates)).max())
    sizes = [chunk.height for chunk in chunks]
    assert len(chunks) > 1 and all(size >= 500 for size in sizes[:-1])
    assert max(sizes) <= 499 + largest
    assert_whole_decisions(chunks, candidates)


def test_a_chunk_smaller_than_a_decision_still_scores_whole_decisions(
    scorers: list[Scorer],
    split: tuple[pl.DataFrame, CandidateTable],
    whole: np.ndarray,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rows, candidates = split
    first = candidates.frame["row_id"].unique(maintain_order=True).head(12)
    few = CandidateTable.from_frame(candidates.frame.filter(pl.col("row_id").is_in(first.implode())))
    few_rows = rows.filter(pl.col("row_id").is_in(first.implode()))
    chunks = recorder(monkeypatch)
    chunked, _ = scored_candidates(scorers, few, few_rows, SPLIT, chunk=1)
    assert len(chunks) == 12 and all(chunk["row_id"].n_unique() == 1 for chunk in chunks)
    assert_whole_decisions(chunks, few)
    # The first decisions lead the group order, so their predictions are the first rows of the whole split's.
    np.testing.assert_allclose(chunked, whole[: few.groups.n_candidates], rtol=0, atol=1e-6)
