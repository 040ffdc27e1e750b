"""The frame takes any shared part: forward, gates and the shared weight come from the part it is given."""

from __future__ import annotations

import pytest
import torch

from mtr.data.datamodule import MessagingDataModule
from mtr.errors import InputError
from mtr.models.frame import MultiTaskModel, SharedPart
from mtr.models.layers import FeatureArch, Towers


class Doubling(SharedPart):
    """A part with no parameters: tower inputs are twice the features, one constant gate."""

    def __init__(self, in_dim: int) -> None:
        super().__init__()
        self.out_dim = in_dim

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Args: x: [B, D]. Returns 2 * x [B, D] and one gate of ones [B, 1]."""
        return 2 * x, {"constant": torch.ones(x.shape[0], 1)}


def test_frame_runs_features_then_the_shared_part_then_the_towers(toy_dataset):
    data = MessagingDataModule(str(toy_dataset), eval_batch_size=16)
    data.setup("test")
    batch = next(iter(data.test_dataloader()))
    torch.manual_seed(0)
    features = FeatureArch(data.schema, 4)
    towers = Towers(len(data.schema.tasks), features.out_dim, [3])
    model = MultiTaskModel(features, Doubling(features.out_dim), towers).eval()
    outputs, gates = model.forward_with_gates(batch.sparse, batch.dense)
    assert torch.equal(outputs, towers(2 * features(batch.sparse, batch.dense)))
    assert torch.equal(model(batch.sparse, batch.dense), outputs) and outputs.shape == (16, len(data.schema.tasks))
    assert list(gates) == ["constant"] and model.last_shared_weight is None  # the part shares no weight
    with pytest.raises(InputError, match="towers read width 5 but the shared part gives"):
        MultiTaskModel(features, Doubling(features.out_dim), Towers(2, 5, []))
