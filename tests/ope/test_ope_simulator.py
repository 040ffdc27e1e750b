"""`mtr ope simulator` end to end: greedy and softmax target policies against the oracle's truth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from mtr.cli import main
from mtr.experiments.ope_simulator import SimulatorOpeConfig, load_simulator_log, target_decision
from mtr.experiments.targets import TargetPolicy
from mtr.models.checkpoint import build_architecture
from mtr.ope.estimators import ESTIMATORS
from mtr.schema import SCHEMA_CHECKPOINT_KEY, DatasetSchema
from mtr.scoring.fusion import fuse
from mtr.scoring.policy import PolicyConfig, decide
from mtr.scoring.weights import FusionWeights

# The random model's best sends score about 0.58 to 0.63 with these weights: a threshold of 0.6 splits them.
WEIGHTS = {"conversion": 1.0, "engagement": 1.0}
# Shrinkage estimators trade a bias towards the (here random) reward model for variance: not held to 4 SE.
UNBIASED = ("ips", "snips", "dr")
POLICIES = [
    {"name": "greedy", "kind": "fused", "weights": WEIGHTS, "threshold": 0.6},
    {"name": "softmax", "kind": "fused", "weights": WEIGHTS, "threshold": 0.6, "temperature": 0.05},
]


@pytest.fixture(scope="module")
def run(sim_dataset: Path, small_mmoe: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder holding an MMoE with fixed random weights (OPE needs a reward model, not a good one)."""
    folder = tmp_path_factory.mktemp("ope_run")
    schema = DatasetSchema.load(sim_dataset)
    torch.manual_seed(0)
    architecture = small_mmoe
    model = build_architecture(architecture, schema, source="test")
    (folder / "checkpoints").mkdir()
    (folder / "config.yaml").write_text(yaml.safe_dump({"model": {"architecture": architecture}}))
    state = {
        SCHEMA_CHECKPOINT_KEY: schema.to_dict(),
        "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
    }
    torch.save(state, folder / "checkpoints" / "last.ckpt")
    return folder


def test_softmax_and_greedy_targets_are_estimated_against_the_truth(sim_dataset, run, tmp_path):
    events, out = sim_dataset.parent / "events", tmp_path / "ope"
    main(
        ["ope", "simulator", "--events", str(events), "--dataset", str(sim_dataset), "--run", str(run)]
        + ["--out", str(out), "--days", "14", "--sizes", "[4000, 600]", "--repetitions", "5"]
        + ["--policies", json.dumps(POLICIES)]
    )
    results = json.loads((out / "results.json").read_text())["policies"]
    assert 0.05 < results["softmax"]["send_rate"] < 0.95  # a stochastic policy, neither all nor nothing
    for name in ("greedy", "softmax"):
        for reward in ("conversion", "engagement", "send_volume"):
            entry = results[name]["rewards"][reward]
            for estimator in UNBIASED:
                # 4 standard errors: a failure is a bias, not bad luck.
                error = abs(entry[estimator]["value"] - entry["truth"])
                assert error < 4 * entry[estimator]["standard_error"] + 1e-9, (name, reward, estimator)
    readme = (out / "README.md").read_text()
    assert "| softmax |" in readme
    for name in ("greedy", "softmax"):
        large, small = results[name]["sizes"]["4000"], results[name]["sizes"]["600"]
        # Whole users of 14 opportunities each are drawn: the sizes are met to within one user.
        assert 4000 <= large["opportunities"] < 4000 + 14 and 600 <= small["opportunities"] < 600 + 14
        for estimator in ESTIMATORS:
            row = f"| {name} | {small['opportunities']:,.0f} | {estimator} | {small['coverage'][estimator]:.0%} |"
            assert row in readme
        # Less data, larger errors: over estimators and rewards, the mean squared error grows (about 6.7-fold).
        squared = [
            sum(cell["rewards"][r][e]["rmse"] ** 2 for r in ("conversion", "engagement") for e in ESTIMATORS)
            for cell in (large, small)
        ]
        assert squared[1] > 2 * squared[0], name


def test_a_softmax_target_is_the_softmax_of_the_fused_scores(sim_dataset, run):
    config = SimulatorOpeConfig(
        str(sim_dataset.parent / "events"), str(sim_dataset), str(run), days=3, policies=(TargetPolicy(**POLICIES[1]),)
    )
    log = load_simulator_log(config)
    decision = target_decision(log, config.policies[0])
    scores = fuse(log.inputs, FusionWeights(WEIGHTS))
    expected = decide(log.candidates.groups, scores, PolicyConfig(threshold=0.6, temperature=0.05))
    np.testing.assert_allclose(decision.probabilities, expected.probabilities, rtol=1e-6)
    np.testing.assert_allclose(log.candidates.groups.group_sum(decision.probabilities), 1.0, rtol=1e-5)
    assert log.truth.shape == (log.candidates.groups.n_candidates, len(log.feedback.reward_names))
