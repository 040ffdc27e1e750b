import json
from pathlib import Path

import pytest

from mtr.errors import InputError
from mtr.objectives import MESSAGING_OBJECTIVES
from mtr.scoring.operating_point import OperatingPoint
from mtr.scoring.policy import FrequencyCap, PolicyConfig
from mtr.scoring.weights import FusionWeights


def test_weights_file_round_trips(tmp_path):
    point = OperatingPoint(
        FusionWeights(conversion=2.0, unsubscribe=5.0, per_channel={"push": {"send_cost": 0.01}}, transform="log"),
        PolicyConfig(threshold=0.003, cap=FrequencyCap(max_sends=2, window_days=7)),
        estimates={"conversion": 0.021},
        provenance={"trial": 17},
    )
    assert OperatingPoint.load(point.save(tmp_path / "weights.json")) == point


def test_weights_file_errors_name_the_field(tmp_path):
    path = tmp_path / "weights.json"
    raw = OperatingPoint().to_dict()
    raw["fusion"]["convresion"] = 1.0
    path.write_text(json.dumps(raw))
    with pytest.raises(InputError, match=r"fusion: fusion weights name \['convresion'\], which are not objectives"):
        OperatingPoint.load(path, MESSAGING_OBJECTIVES)
    raw = OperatingPoint().to_dict()
    raw["policy"]["temperature"] = -1
    path.write_text(json.dumps(raw))
    with pytest.raises(InputError, match="temperature"):
        OperatingPoint.load(path)
    with pytest.raises(InputError, match="not found"):
        OperatingPoint.load(tmp_path / "missing.json")


def test_a_committed_weights_file_loads_and_saves_unchanged(tmp_path):
    """weights.json files written before objectives became data still load, and save to the same JSON."""
    committed = Path(__file__).parent / "data" / "weights_before_objectives.json"  # as written by an older study
    point = OperatingPoint.load(committed, MESSAGING_OBJECTIVES)
    assert point.fusion.named(MESSAGING_OBJECTIVES)["unsubscribe"] == pytest.approx(0.2719839508265554)
    assert json.loads(point.save(tmp_path / "weights.json").read_text()) == json.loads(committed.read_text())


def test_a_softmax_policy_round_trips_with_its_temperature(tmp_path):
    point = OperatingPoint(FusionWeights(unsubscribe=2.0).resolved(MESSAGING_OBJECTIVES), PolicyConfig(0.01, 0.05))
    saved = json.loads(point.save(tmp_path / "weights.json").read_text())
    assert saved["policy"] == {"threshold": 0.01, "temperature": 0.05, "cap": None}
    assert sorted(saved["fusion"]) == sorted(
        ["conversion", "engagement", "retention", "unsubscribe", "send_cost", "per_channel"]
        + ["transform", "form", "floor", "use_value"]
    )
    assert OperatingPoint.load(tmp_path / "weights.json").policy.temperature == 0.05
