"""Rebuild a trained architecture from a run folder: its saved config and a checkpoint's weights."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from mtr.errors import InputError
from mtr.schema import SCHEMA_CHECKPOINT_KEY, DatasetSchema


def load_trained_model(run_dir: Path | str, checkpoint: str = "last.ckpt") -> tuple[nn.Module, DatasetSchema]:
    """Rebuild a trained architecture from a run folder's saved config and a checkpoint's weights.

    The architecture comes from `config.yaml` (model.architecture, parsed as LightningCLI does), the
    schema from the checkpoint (saved by `MultiTaskModule.on_save_checkpoint`) and the weights from its
    state_dict, loaded with `torch.load(weights_only=True)`.

    Args:
        run_dir: a run folder written by `mtr fit` (config.yaml and checkpoints/).
        checkpoint: file name inside `checkpoints/`, or a path.
    """
    run_dir = Path(run_dir)
    config_path = run_dir / "config.yaml"
    path = checkpoint_path(run_dir, checkpoint)
    for needed in (config_path, path):
        if not needed.exists():
            raise InputError(f"run folder {run_dir}: {needed} not found")
    config = yaml.safe_load(config_path.read_text())
    architecture_config = (config.get("model") or {}).get("architecture")
    if architecture_config is None:
        raise InputError(f"{config_path}: field 'model.architecture' is missing")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if SCHEMA_CHECKPOINT_KEY not in state:
        raise InputError(f"checkpoint {path} has no '{SCHEMA_CHECKPOINT_KEY}': was it written by mtr fit?")
    schema = DatasetSchema.from_dict(state[SCHEMA_CHECKPOINT_KEY], source=f"{path} {SCHEMA_CHECKPOINT_KEY}")
    model = build_architecture(architecture_config, schema, source=f"{config_path} model.architecture")
    weights = {k.removeprefix("model."): v for k, v in state["state_dict"].items() if k.startswith("model.")}
    missing, unexpected = _key_mismatch(model, weights)
    if missing or unexpected:
        raise InputError(
            f"checkpoint {path} does not fit the architecture of {config_path}: missing weights {missing[:3]}, "
            f"unexpected {unexpected[:3]} (checkpoints written before the shared model frame keep the shared "
            "part's weights outside `shared.`; retrain, or rename those keys)"
        )
    model.load_state_dict(weights)
    return model.eval(), schema


# The architecture classes before the frame took its hyperparameters: configs name the frame now.
_BEFORE_THE_FRAME = {
    "mtr.models.mmoe.MMoE": "mtr.models.mmoe.GatedExperts",
    "mtr.models.ple.PLE": "mtr.models.ple.ProgressiveExtraction",
    "mtr.models.shared_bottom.SharedBottom": "mtr.models.shared_bottom.SharedMLP",
    "mtr.models.single_task.SingleTask": "mtr.models.single_task.PerTaskBottoms",
}


def build_architecture(config: Mapping[str, Any], schema: DatasetSchema, source: str) -> nn.Module:
    """The architecture a `model.architecture` config describes, parsed as LightningCLI parses it.

    Args:
        config: `{class_path: ..., init_args: {...}}`, e.g. the frame with its nested `shared` class.
        schema: the dataset schema the architecture is built for.
        source: where the config comes from, named in errors.
    """
    from jsonargparse import ArgumentParser

    old = _BEFORE_THE_FRAME.get(str(config.get("class_path")))
    if old is not None:
        raise InputError(
            f"{source}: class_path {config['class_path']} is from before the frame took the shared "
            f"hyperparameters; name mtr.models.frame.MultiTaskModel with `shared: {{class_path: {old}}}` "
            "(see configs/model/)"
        )
    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--architecture", type=Callable[[DatasetSchema], nn.Module])
    try:
        parsed = parser.instantiate(parser.parse_object({"architecture": dict(config)}))
    except Exception as error:  # jsonargparse raises its own types; name the config that failed
        raise InputError(f"{source}: {error}") from error
    return parsed.architecture(schema)


def _key_mismatch(model: nn.Module, weights: dict[str, torch.Tensor]) -> tuple[list[str], list[str]]:
    """The model's weight names the checkpoint lacks, and the checkpoint's names the model does not have."""
    expected = set(model.state_dict())
    return sorted(expected - set(weights)), sorted(set(weights) - expected)


BEST = "best"


def checkpoint_path(run_dir: Path | str, checkpoint: str) -> Path:
    """`checkpoint` when it is an existing path; "best": the run's one `checkpoints/best-*.ckpt` (the checkpoint
    `mtr fit` selected on validation); else the file of that name in the run's `checkpoints/`."""
    if Path(checkpoint).exists():
        return Path(checkpoint)
    folder = Path(run_dir) / "checkpoints"
    if checkpoint == BEST:
        found = sorted(folder.glob("best-*.ckpt"))
        if len(found) != 1:
            raise InputError(
                f"run folder {run_dir}: checkpoint 'best' needs one best-*.ckpt in {folder}, found {len(found)}"
            )
        return found[0]
    return folder / checkpoint
