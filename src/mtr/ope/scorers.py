"""Which trained model scores which logged rows of a study: one model, or cross-fitted fold models.

A policy judged on rows its model learnt from is flattered by what the model memorised, so one model (a run
trained on every user) may be judged only on splits it did not learn from. Fold models (runs trained with
`data.user_folds`, `mtr.data.folds`) may be judged on every split, the training days included, each on the
users it never saw: the evidence becomes every logged day instead of one split.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import polars as pl
import yaml
from torch import nn

from mtr.data.datamodule import dataset_fingerprint
from mtr.data.folds import UserFolds
from mtr.errors import InputError
from mtr.models.checkpoint import checkpoint_path, load_trained_model
from mtr.schema import DatasetSchema

TRAIN = "train"


@dataclass(frozen=True)
class Scorer:
    """A run, its checkpoint file and, for a fold model, its folds (None: trained on every user)."""

    run: Path
    checkpoint: Path
    folds: UserFolds | None

    @cached_property
    def model(self) -> tuple[nn.Module, DatasetSchema]:
        """The trained model and its schema, loaded once however many candidate sets it scores."""
        return load_trained_model(self.run, str(self.checkpoint))

    def rows(self, frame: pl.DataFrame, table: str) -> np.ndarray:
        """[rows] True for the rows this model may be judged on."""
        if self.folds is None:
            return np.ones(frame.height, dtype=bool)
        return self.folds.of(frame, table) == self.folds.held_out


def load_scorers(runs: Sequence[Path], checkpoint: str, splits: Sequence[str]) -> list[Scorer]:
    """The scorers of `runs`, checked to judge every user of `splits` exactly once and never on learnt rows.

    Args:
        runs: one run trained on every user, or the K fold models of one cross-fit (any order).
        checkpoint: the checkpoint of every run: a file name in its checkpoints/, "best" (its one best-*.ckpt)
            or, for a single run, a path.
        splits: the dataset splits the study is judged on.
    """
    if not runs:
        raise InputError("run: give a run folder, or the fold models of a cross-fit")
    scorers = [Scorer(Path(run), checkpoint_path(run, checkpoint), _folds_of(Path(run))) for run in runs]
    plain = [s.run for s in scorers if s.folds is None]
    if plain and len(scorers) > 1:
        raise InputError(f"run: {plain} were trained on every user; cross-fitting takes only fold models")
    if plain:
        if TRAIN in splits:
            raise InputError(
                f"split: run {plain[0]} learnt from every user's '{TRAIN}' rows, so a policy judged there is"
                " flattered; judge it on validation, or cross-fit fold models (data.user_folds) to use every day"
            )
        return scorers
    _check_cross_fit(scorers)
    return sorted(scorers, key=lambda s: s.folds.held_out)


def check_trained_on(scorers: Sequence[Scorer], dataset: Path, schema: DatasetSchema | None = None) -> None:
    """Every run was trained on `dataset` (its run_info.json's data fingerprint): a model of another dataset
    scores these rows with features it never learnt, and its estimates would be silently wrong."""
    fingerprint = None
    for scorer in scorers:
        info = scorer.run / "run_info.json"
        if not info.is_file():
            continue  # a run from before run_info.json: nothing to compare
        trained_on = json.loads(info.read_text()).get("data_fingerprint")
        fingerprint = fingerprint or dataset_fingerprint(dataset, schema)
        if trained_on is not None and trained_on != fingerprint:
            raise InputError(
                f"run {scorer.run} was trained on another dataset (data fingerprint {trained_on[:12]}), not on "
                f"{dataset} ({fingerprint[:12]}); give the dataset it was trained on"
            )


def _folds_of(run: Path) -> UserFolds | None:
    config_path = run / "config.yaml"
    if not config_path.exists():
        raise InputError(f"run folder {run}: {config_path} not found")
    data = (yaml.safe_load(config_path.read_text()) or {}).get("data") or {}
    fields = (data.get("init_args") or data).get("user_folds")
    return None if fields is None else UserFolds.from_dict(fields, f"{config_path} data.user_folds")


def _check_cross_fit(scorers: list[Scorer]) -> None:
    """Every fold model of one assignment (folds, column, seed), each fold held out exactly once."""
    first = scorers[0].folds
    for scorer in scorers:
        folds = scorer.folds
        if (folds.folds, folds.column, folds.seed) != (first.folds, first.column, first.seed):
            raise InputError(
                f"run {scorer.run}: user_folds {folds} is not the assignment of run {scorers[0].run} ({first});"
                " the fold models of one cross-fit share folds, column and seed"
            )
    held = sorted(s.folds.held_out for s in scorers)
    if held != list(range(first.folds)):
        missing = sorted(set(range(first.folds)) - set(held))
        raise InputError(
            f"run: a cross-fit over {first.folds} folds needs one model per held-out fold; held out {held}"
            + (f", missing {missing}" if missing else "")
        )
