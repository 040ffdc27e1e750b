"""The frame takes any shared part: forward, gates and the shared weight come from the part it is given."""

from __future__ import annotations

import pytest
import torch

from mtr.data.datamodule import MessagingDataModule
from mtr.errors import InputError
from mtr.models.frame import FrameInputs, MultiTaskModel, SharedPart
from mtr.models.layers import FeatureArch, Towers


class Doubling(SharedPart):
    """A part with no parameters: tower inputs are twice the features, one constant gate."""

    def __init__(self, frame: FrameInputs) -> None:
        super().__init__()
        self.out_dim = frame.width

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Args: x: [B, D]. Returns 2 * x [B, D] and one gate of ones [B, 1]."""
        return 2 * x, {"constant": torch.ones(x.shape[0], 1)}


def test_frame_runs_features_then_the_shared_part_then_the_towers(toy_dataset):
    data = MessagingDataModule(str(toy_dataset), eval_batch_size=16)
    data.setup("test")
    batch = next(iter(data.test_dataloader()))
    torch.manual_seed(0)
    model = MultiTaskModel(data.schema, Doubling, embedding_dim=4, tower_hidden=[3]).eval()
    torch.manual_seed(0)  # the same seed in the frame's order: features, then (no weights) towers
    features = FeatureArch(data.schema, 4, (16,)).eval()
    towers = Towers(len(data.schema.tasks), features.out_dim, [3]).eval()
    outputs, gates = model.forward_with_gates(batch.sparse, batch.dense)
    assert torch.equal(outputs, towers(2 * features(batch.sparse, batch.dense)))
    assert torch.equal(model(batch.sparse, batch.dense), outputs) and outputs.shape == (16, len(data.schema.tasks))
    assert list(gates) == ["constant"] and model.last_shared_weight is None  # the part shares no weight
    with pytest.raises(InputError, match="shared must build a SharedPart, got Linear"):
        MultiTaskModel(data.schema, lambda frame: torch.nn.Linear(frame.width, 2))
