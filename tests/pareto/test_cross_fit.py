"""Cross-fitted evidence: fold models judge every logged day, each only on the users it never saw."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from mtr.cli import main
from mtr.errors import InputError
from mtr.models.checkpoint import load_trained_model
from mtr.ope.problem import load_problem, scored_by, split_rows
from mtr.ope.scorers import check_trained_on, load_scorers
from mtr.scoring.candidates import candidate_model_rows, score_candidates, simulator_candidates

QUIET = ["--wandb", "false", "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def fit(dataset: Path, out: Path, *extra: str) -> Path:
    args = ["--data.path", str(dataset), "--trainer.default_root_dir", str(out), "--trainer.max_epochs", "1"]
    main(["fit", "--config", "configs/experiment/sim_mmoe.yaml", *args, "--seed_everything", "0", *extra, *QUIET])
    return out


@pytest.fixture(scope="module")
def fold_runs(sim_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two fold models of one cross-fit (`mtr fit --data.user_folds.held_out k`), one epoch each."""
    root = tmp_path_factory.mktemp("folds")
    return [fit(sim_dataset, root / f"fold{k}", "--data.user_folds.held_out", str(k)) for k in (0, 1)]


def test_every_opportunity_is_scored_by_the_fold_model_that_never_saw_its_user(
    sim_dataset: Path, fold_runs: list[Path], tmp_path: Path
) -> None:
    events = sim_dataset.parent / "events"
    scorers = load_scorers(fold_runs[::-1], "best", ["train", "validation"])
    assert [s.folds.held_out for s in scorers] == [0, 1]  # given in any order
    rows, _ = split_rows(sim_dataset, "train,validation")
    candidates = simulator_candidates(events, rows)
    model_rows = candidate_model_rows(candidates.frame, rows)
    channel = candidates.groups.channel
    predicted, _ = scored_by(scorers, model_rows, channel, "evidence")
    fold = scorers[0].folds.of(model_rows, "evidence")
    for scorer in scorers:
        model, schema = load_trained_model(scorer.run, str(scorer.checkpoint))
        own = fold == scorer.folds.held_out
        everyone = score_candidates(model, schema, model_rows, channel)
        np.testing.assert_allclose(predicted[own], everyone[own], rtol=1e-6)
        assert not np.allclose(predicted[~own], everyone[~own])  # the other fold: the other model's scores
    # The study's evidence is every opportunity of both splits, the training days included.
    inputs = {"run": [str(r) for r in fold_runs], "checkpoint": "best", "dataset": str(sim_dataset)}
    problem = load_problem(tmp_path, {**inputs, "split": "train,validation"}, events)
    assert problem.inputs.groups.n_groups == rows.height
    assert problem.description["scoring_models"] == 2
    np.testing.assert_allclose(problem.inputs.probabilities, predicted, rtol=1e-6)


def test_a_policy_is_never_judged_on_the_rows_its_model_learnt_from(
    sim_dataset: Path, fold_runs: list[Path], tmp_path: Path
) -> None:
    everyone = fit(sim_dataset, tmp_path / "all")
    with pytest.raises(InputError, match="learnt from every user's 'train' rows"):
        load_scorers([everyone], "last.ckpt", ["train", "validation"])
    assert load_scorers([everyone], "last.ckpt", ["validation"])[0].folds is None
    with pytest.raises(InputError, match="cross-fitting takes only fold models"):
        load_scorers([everyone, fold_runs[0]], "last.ckpt", ["validation"])
    with pytest.raises(InputError, match=r"held out \[0\], missing \[1\]"):
        load_scorers([fold_runs[0]], "last.ckpt", ["train"])
    other_seed = tmp_path / "seed1"
    shutil.copytree(fold_runs[1], other_seed)
    config = other_seed / "config.yaml"
    config.write_text(config.read_text().replace("    seed: 0", "    seed: 1"))
    with pytest.raises(InputError, match="share folds, column and seed"):
        load_scorers([fold_runs[0], other_seed], "last.ckpt", ["train"])
    with pytest.raises(InputError, match="split: dataset .* not \\['tests'\\]"):
        split_rows(sim_dataset, "validation,tests")
    rows = pl.read_parquet(sim_dataset / "validation.parquet")
    assert split_rows(sim_dataset, "validation")[0].height == rows.height


def test_a_model_trained_on_another_dataset_is_refused(
    sim_dataset: Path, fold_runs: list[Path], tmp_path: Path
) -> None:
    other = tmp_path / "other"
    shutil.copytree(sim_dataset, other)
    rows = pl.read_parquet(other / "validation.parquet")
    rows.head(rows.height - 1).write_parquet(other / "validation.parquet")  # one row fewer: another dataset
    scorers = load_scorers(fold_runs, "best", ["validation"])
    check_trained_on(scorers, sim_dataset)  # the dataset they were trained on
    with pytest.raises(InputError, match="was trained on another dataset"):
        check_trained_on(scorers, other)
