import json

import pytest

from mtr.errors import InputError
from mtr.scoring.fusion import FusionWeights
from mtr.scoring.operating_point import OperatingPoint
from mtr.scoring.policy import FrequencyCap, PolicyConfig


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
    with pytest.raises(InputError, match=r"fusion: unknown field\(s\) \['convresion'\]"):
        OperatingPoint.load(path)
    raw = OperatingPoint().to_dict()
    raw["policy"]["temperature"] = -1
    path.write_text(json.dumps(raw))
    with pytest.raises(InputError, match="temperature"):
        OperatingPoint.load(path)
    with pytest.raises(InputError, match="not found"):
        OperatingPoint.load(tmp_path / "missing.json")
