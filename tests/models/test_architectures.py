"""Every architecture in configs/model/: output shape and order, state_dict round trip, torch.export, gates,
the shared layer GradNorm reads, independence of the single-task networks."""

from __future__ import annotations

import functools
import inspect

import pytest
import torch
from torch import nn

from mtr.data.batch import Batch, sparse_batch
from mtr.data.datamodule import MessagingDataModule
from mtr.errors import InputError
from mtr.models.checkpoint import build_architecture
from mtr.models.frame import MultiTaskModel
from mtr.models.mmoe import GatedExperts
from mtr.models.ple import ProgressiveExtraction
from mtr.models.shared_bottom import SharedMLP
from mtr.models.single_task import PerTaskBottoms
from mtr.schema import DatasetSchema


@pytest.fixture(scope="module")
def data(toy_dataset) -> tuple[DatasetSchema, Batch]:
    module = MessagingDataModule(str(toy_dataset), eval_batch_size=32)
    module.setup("test")
    return module.schema, next(iter(module.test_dataloader()))


def test_logits_have_one_column_per_schema_task_and_depend_on_the_row(model_config, data):
    schema, batch = data
    torch.manual_seed(0)
    model = model_config.build(schema).eval()
    logits = model(batch.sparse, batch.dense)
    assert logits.shape == (len(batch), len(schema.tasks)) and logits.dtype == torch.float32
    assert torch.isfinite(logits).all()
    # Rows are scored independently: scoring a subset gives the same logits as scoring the whole batch.
    ids = torch.stack([batch.sparse[key].values() for key in batch.sparse.keys()], dim=1)  # [B, n_sparse]
    head = sparse_batch(batch.sparse.keys(), ids[:10])
    torch.testing.assert_close(model(head, batch.dense[:10]), logits[:10])


def test_state_dict_round_trip_reproduces_the_logits(model_config, data):
    schema, batch = data
    torch.manual_seed(0)
    original = model_config.build(schema).eval()
    torch.manual_seed(1)
    restored = model_config.build(schema).eval()
    assert not torch.equal(original(batch.sparse, batch.dense), restored(batch.sparse, batch.dense))
    restored.load_state_dict(original.state_dict())
    assert torch.equal(original(batch.sparse, batch.dense), restored(batch.sparse, batch.dense))
    assert any(key.startswith("features.ebc.embedding_bags.t_country") for key in original.state_dict())


def test_torch_export_gives_the_eager_logits(model_config, data):
    schema, batch = data
    model = model_config.build(schema).eval()
    program = torch.export.export(model, (batch.sparse, batch.dense), strict=False)
    torch.testing.assert_close(program.module()(batch.sparse, batch.dense), model(batch.sparse, batch.dense))


def gate_widths(model: nn.Module, shared_args: dict, schema: DatasetSchema) -> dict[str, int]:
    """The gates `model` must report, gate name -> number of experts it weighs (from its shared part's
    settings: the config's init_args over the class defaults)."""
    shared = type(model.shared)
    settings = {name: p.default for name, p in inspect.signature(shared).parameters.items()} | shared_args
    names = schema.task_names
    if shared is GatedExperts:
        return dict.fromkeys(names, settings["n_experts"])
    if shared is ProgressiveExtraction:
        specific, shared, levels = settings["n_specific_experts"], settings["n_shared_experts"], settings["n_levels"]
        widths = {f"level_{level}/{name}": specific + shared for level in range(levels) for name in names}
        # Every level but the last also mixes all experts into the next level's shared input.
        widths.update({f"level_{level}/shared": len(names) * specific + shared for level in range(levels - 1)})
        return widths
    return {}  # an architecture without gates


def test_gates_are_distributions_and_match_forward(model_config, data):
    schema, batch = data
    model = model_config.build(schema).eval()
    logits, gates = model.forward_with_gates(batch.sparse, batch.dense)
    assert torch.equal(logits, model(batch.sparse, batch.dense))
    expected = gate_widths(model, model_config.shared_args, schema)
    assert {key: tuple(weights.shape) for key, weights in gates.items()} == {
        key: (len(batch), width) for key, width in expected.items()
    }
    for key, weights in gates.items():
        torch.testing.assert_close(weights.sum(1), torch.ones(len(batch)), msg=key)


def test_single_task_networks_share_nothing(data):
    schema, batch = data
    bottoms = functools.partial(PerTaskBottoms, hidden=(8,))
    model = MultiTaskModel(schema, bottoms, embedding_dim=4, tower_hidden=(), features_per_task=True).eval()
    before = model(batch.sparse, batch.dense)
    with torch.no_grad():  # perturb every parameter slice that belongs to task 0
        for part in (model.features.dense_arch, model.shared, model.towers):
            for parameter in part.parameters():
                parameter[0].add_(1.0)
        for bag in model.features.ebc.embedding_bags.values():
            bag.weight[:, :4].add_(1.0)  # columns 0..3: task 0's copy of the embedding
    after = model(batch.sparse, batch.dense)
    assert not torch.allclose(after[:, 0], before[:, 0])
    torch.testing.assert_close(after[:, 1:], before[:, 1:])


def test_last_shared_weight_is_shared_by_every_task_or_none_if_nothing_is(model_config, data):
    schema, batch = data
    torch.manual_seed(0)
    model = model_config.build(schema)
    parameters = list(model.parameters())
    first, last = (
        torch.autograd.grad(model(batch.sparse, batch.dense)[:, task].sum(), parameters, allow_unused=True)
        for task in (0, len(schema.tasks) - 1)
    )
    # Does any parameter element move with both tasks' outputs? Then the model shares something.
    shares = any(
        a is not None and b is not None and bool(((a != 0) & (b != 0)).any()) for a, b in zip(first, last, strict=True)
    )
    weight = model.last_shared_weight
    assert (weight is not None) == shares
    if weight is not None:
        assert isinstance(weight, nn.Parameter)
        index = next(i for i, parameter in enumerate(parameters) if parameter is weight)
        assert first[index].abs().sum() > 0 and last[index].abs().sum() > 0


def test_bad_hyperparameters_are_named(data):
    schema, _ = data
    with pytest.raises(InputError, match="n_experts"):
        MultiTaskModel(schema, functools.partial(GatedExperts, n_experts=0))
    with pytest.raises(InputError, match="n_shared_experts"):
        MultiTaskModel(schema, functools.partial(ProgressiveExtraction, n_shared_experts=0))
    with pytest.raises(InputError, match="hidden"):
        MultiTaskModel(schema, functools.partial(SharedMLP, hidden=()))
    with pytest.raises(InputError, match="embedding_dim"):
        MultiTaskModel(schema, PerTaskBottoms, embedding_dim=0)


def test_a_config_naming_an_architecture_from_before_the_frame_is_told_the_new_form(data):
    schema, _ = data
    old = {"class_path": "mtr.models.mmoe.MMoE", "init_args": {"n_experts": 4}}
    with pytest.raises(InputError, match=r"old\.yaml.*mtr\.models\.frame\.MultiTaskModel.*GatedExperts"):
        build_architecture(old, schema, source="old.yaml")


def test_a_bad_nested_shared_argument_names_the_config_and_the_field(data):
    schema, _ = data
    config = {
        "class_path": "mtr.models.frame.MultiTaskModel",
        "init_args": {"shared": {"class_path": "mtr.models.mmoe.GatedExperts", "init_args": {"n_expert": 4}}},
    }
    with pytest.raises(InputError, match=r"(?s)run/config\.yaml.*n_expert"):
        build_architecture(config, schema, source="run/config.yaml")
