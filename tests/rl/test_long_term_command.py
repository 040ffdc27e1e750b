"""`mtr long-term` end to end at a small scale: every policy valued with intervals beside its truth, the learned
policy exported and loadable, bad input refused by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mtr.cli import main
from mtr.errors import InputError
from mtr.serving.long_term import LongTermPolicy

SMALL = ["--users", "200", "--first_day", "8", "--horizon", "10", "--world.long_term_strength", "2.0"]


def test_long_term_values_every_policy_beside_its_truth_and_exports_the_learned_one(tmp_path: Path, capsys) -> None:
    main(["long-term", "--out", str(tmp_path / "lt"), *SMALL])
    results = json.loads((tmp_path / "lt" / "results.json").read_text())
    policies = results["policies"]
    assert set(policies) == {
        "logging",
        "lighter (none_share 0.8)",
        "myopic (most engaging)",
        "send nothing",
        "learned (FQI send gate)",
    }
    logging = policies["logging"]
    low, high = logging["estimates"]["fqe"]["interval"]
    assert low < logging["true_value"] < high
    assert policies["send nothing"]["truth_per_user"]["sends"] == 0
    learned, myopic = policies["learned (FQI send gate)"], policies["myopic (most engaging)"]
    assert learned["truth_per_user"]["sends"] < myopic["truth_per_user"]["sends"]
    assert (
        0 < myopic["truth_per_user"]["reachable_email"] < policies["send nothing"]["truth_per_user"]["reachable_email"]
    )
    loaded = LongTermPolicy.load(tmp_path / "lt" / "policy")
    assert loaded.manifest["reward"] == {"active": 1.0} and loaded.manifest["horizon"] == 10
    assert loaded.manifest["fqe_value"] == learned["estimates"]["fqe"]
    assert results["config"]["learning_seed"] == 100
    printed = capsys.readouterr().out
    assert "learned (FQI send gate)" in printed and "FQE" in printed


def test_long_term_refuses_an_unknown_reward_signal(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown signal 'clicks'"):
        main(["long-term", "--out", str(tmp_path / "lt"), *SMALL, "--reward", '{"clicks": 1.0}'])
    assert not (tmp_path / "lt").exists()
