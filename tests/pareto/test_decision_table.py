"""The decision table: a study that maximises the decision's conversion (the same 7-day window for every action)
gets its logged labels, its model head and its truth from the oracle, like every other objective."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mtr.cli import main
from mtr.ope.estimators import evaluate
from mtr.ope.problem import load_problem
from mtr.scoring.policy import PolicyDecision

QUIET = ["--wandb", "false", "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


@pytest.fixture(scope="module")
def decision_run(sim_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(events, dataset, run): `mtr build-dataset --objectives decision` on the shared small world, one epoch."""
    root = tmp_path_factory.mktemp("decision")
    events, dataset, run = sim_dataset.parent / "events", root / "dataset", root / "run"
    main(["build-dataset", "--events", str(events), "--out", str(dataset), "--objectives", "decision"])
    fit = ["--data.path", str(dataset), "--trainer.default_root_dir", str(run), "--trainer.max_epochs", "1"]
    main(["fit", "--config", "configs/experiment/sim_mmoe.yaml", *fit, "--seed_everything", "0", *QUIET])
    return events, dataset, run


def test_the_decision_conversion_is_predicted_estimated_and_known_in_truth(
    decision_run: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    events, dataset, run = decision_run
    inputs = {"run": str(run), "checkpoint": "last.ckpt", "dataset": str(dataset), "split": "validation"}
    problem = load_problem(tmp_path, inputs, events)
    names = [o.name for o in problem.inputs.objectives]
    assert names[0] == "decision_conversion" and "conversion" not in names
    truth = problem.truth[:, 0]
    assert np.isfinite(truth).all() and 0 < truth.mean() < 1  # the oracle's p_decision_conversion
    # The logging policy's estimate against its truth on the same opportunities: the label is the truth's draw.
    groups = problem.inputs.groups
    logged = np.zeros(groups.n_candidates)
    logged[problem.feedback.logged_index] = 1.0
    value = evaluate(problem.feedback, PolicyDecision(groups, probabilities=logged))
    estimate = value.estimates["decision_conversion"]["dr"]
    true_value = truth[problem.feedback.logged_index].mean()
    assert abs(estimate.value - true_value) < 3 * estimate.standard_error, (estimate, true_value)
