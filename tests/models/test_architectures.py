"""Every architecture: output shape and order, state_dict round trip, torch.export, gates, independence."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from mtr.data.batch import Batch, sparse_batch
from mtr.data.datamodule import MessagingDataModule
from mtr.errors import InputError
from mtr.models.mmoe import MMoE
from mtr.models.ple import PLE
from mtr.models.shared_bottom import SharedBottom
from mtr.models.single_task import SingleTask
from mtr.schema import DatasetSchema

ARCHITECTURES = {
    "single_task": functools.partial(SingleTask, embedding_dim=4, hidden=(8,)),
    "shared_bottom": functools.partial(SharedBottom, embedding_dim=4, bottom_hidden=(16, 8), dense_hidden=(4,)),
    "mmoe": functools.partial(MMoE, embedding_dim=4, n_experts=3, expert_hidden=(8, 6)),
    "ple": functools.partial(PLE, embedding_dim=4, n_levels=2, n_specific_experts=1, n_shared_experts=2),
}


@pytest.fixture(scope="module")
def data(toy_dataset) -> tuple[DatasetSchema, Batch]:
    module = MessagingDataModule(str(toy_dataset), eval_batch_size=32)
    module.setup("test")
    return module.schema, next(iter(module.test_dataloader()))


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_logits_have_one_column_per_schema_task_and_depend_on_the_row(name, data):
    schema, batch = data
    torch.manual_seed(0)
    model = ARCHITECTURES[name](schema).eval()
    logits = model(batch.sparse, batch.dense)
    assert logits.shape == (len(batch), len(schema.tasks)) and logits.dtype == torch.float32
    assert torch.isfinite(logits).all()
    # Rows are scored independently: scoring a subset gives the same logits as scoring the whole batch.
    ids = torch.stack([batch.sparse[key].values() for key in batch.sparse.keys()], dim=1)  # [B, n_sparse]
    head = sparse_batch(batch.sparse.keys(), ids[:10])
    torch.testing.assert_close(model(head, batch.dense[:10]), logits[:10])


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_state_dict_round_trip_reproduces_the_logits(name, data):
    schema, batch = data
    torch.manual_seed(0)
    original = ARCHITECTURES[name](schema).eval()
    torch.manual_seed(1)
    restored = ARCHITECTURES[name](schema).eval()
    assert not torch.equal(original(batch.sparse, batch.dense), restored(batch.sparse, batch.dense))
    restored.load_state_dict(original.state_dict())
    assert torch.equal(original(batch.sparse, batch.dense), restored(batch.sparse, batch.dense))
    assert any(key.startswith("features.ebc.embedding_bags.t_country") for key in original.state_dict())


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_torch_export_gives_the_eager_logits(name, data):
    schema, batch = data
    model = ARCHITECTURES[name](schema).eval()
    program = torch.export.export(model, (batch.sparse, batch.dense), strict=False)
    torch.testing.assert_close(program.module()(batch.sparse, batch.dense), model(batch.sparse, batch.dense))


@pytest.mark.parametrize("name", ["mmoe", "ple"])
def test_gates_are_distributions_and_match_forward(name, data):
    schema, batch = data
    model = ARCHITECTURES[name](schema).eval()
    logits, gates = model.forward_with_gates(batch.sparse, batch.dense)
    assert torch.equal(logits, model(batch.sparse, batch.dense))
    for key, weights in gates.items():
        assert weights.shape[0] == len(batch), key
        torch.testing.assert_close(weights.sum(1), torch.ones(len(batch)))
    if name == "mmoe":
        assert sorted(gates) == sorted(schema.task_names) and gates["conversion_push"].shape[1] == 3
    else:  # 14 tasks x 1 own expert + 2 shared experts
        assert gates["level_0/shared"].shape[1] == 14 + 2 and gates["level_1/retention_none"].shape[1] == 1 + 2
        assert "level_1/shared" not in gates  # the last level has no shared gate


def test_single_task_networks_share_nothing(data):
    schema, batch = data
    model = ARCHITECTURES["single_task"](schema).eval()
    before = model(batch.sparse, batch.dense)
    with torch.no_grad():  # perturb every parameter slice that belongs to task 0
        for parameter in model.networks.parameters():
            parameter[0].add_(1.0)
        for bag in model.features.ebc.embedding_bags.values():
            bag.weight[:, :4].add_(1.0)  # columns 0..3: task 0's copy of the embedding
    after = model(batch.sparse, batch.dense)
    assert not torch.allclose(after[:, 0], before[:, 0])
    torch.testing.assert_close(after[:, 1:], before[:, 1:])


@pytest.mark.parametrize("name", ["shared_bottom", "mmoe", "ple"])
def test_last_shared_weight_receives_every_task_gradient(name, data):
    schema, batch = data
    model = ARCHITECTURES[name](schema)
    weight = model.last_shared_weight
    assert isinstance(weight, nn.Parameter)
    for task in (0, len(schema.tasks) - 1):
        (grad,) = torch.autograd.grad(model(batch.sparse, batch.dense)[:, task].sum(), weight)
        assert grad.abs().sum() > 0


def test_bad_hyperparameters_are_named(data):
    schema, _ = data
    with pytest.raises(InputError, match="n_experts"):
        MMoE(schema, n_experts=0)
    with pytest.raises(InputError, match="n_shared_experts"):
        PLE(schema, n_shared_experts=0)
    with pytest.raises(InputError, match="bottom_hidden"):
        SharedBottom(schema, bottom_hidden=())
    with pytest.raises(InputError, match="embedding_dim"):
        SingleTask(schema, embedding_dim=0)
