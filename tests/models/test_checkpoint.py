"""Rebuilding a trained model from a run folder (the round trip is in tests/scoring/test_candidates.py):
a checkpoint that does not fit its architecture is refused, naming the weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from mtr.errors import InputError
from mtr.models.checkpoint import build_architecture, load_trained_model
from mtr.schema import SCHEMA_CHECKPOINT_KEY, DatasetSchema

ARCHITECTURE = {
    "class_path": "mtr.models.frame.MultiTaskModel",
    "init_args": {
        "embedding_dim": 4,
        "shared": {"class_path": "mtr.models.mmoe.GatedExperts", "init_args": {"n_experts": 2}},
    },
}


def write_run(folder: Path, schema: DatasetSchema, state_dict: dict[str, torch.Tensor]) -> None:
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump({"model": {"architecture": ARCHITECTURE}}))
    state = {SCHEMA_CHECKPOINT_KEY: schema.to_dict(), "state_dict": {f"model.{k}": v for k, v in state_dict.items()}}
    torch.save(state, folder / "checkpoints" / "last.ckpt")


def test_a_checkpoint_from_before_the_model_frame_is_refused_naming_the_moved_weights(
    toy_dataset: Path, tmp_path: Path
) -> None:
    schema = DatasetSchema.load(toy_dataset)
    model = build_architecture(ARCHITECTURE, schema, source="test")
    old_names = {k.removeprefix("shared."): v for k, v in model.state_dict().items()}
    write_run(tmp_path, schema, old_names)
    with pytest.raises(InputError, match=r"last.ckpt does not fit the architecture .*missing weights \['shared\."):
        load_trained_model(tmp_path)
