"""Batched layers compute exactly what separate layers would."""

from __future__ import annotations

import torch

from mtr.models.layers import BatchedLinear, BatchedMLP, Gates, Towers, mix


def test_batched_linear_equals_one_linear_per_network():
    torch.manual_seed(0)
    layer = BatchedLinear(3, 5, 4)
    shared, per_network = torch.randn(7, 5), torch.randn(3, 7, 5)
    expected_shared = torch.stack([shared @ layer.weight[n] + layer.bias[n] for n in range(3)])
    expected_each = torch.stack([per_network[n] @ layer.weight[n] + layer.bias[n] for n in range(3)])
    torch.testing.assert_close(layer(shared), expected_shared)
    torch.testing.assert_close(layer(per_network), expected_each)


def test_batched_mlp_keeps_logit_layer_linear():
    torch.manual_seed(0)
    head = BatchedMLP(2, 3, [4, 1], final_activation=False)
    outputs = head(torch.randn(50, 3))
    assert outputs.shape == (2, 50, 1) and (outputs < 0).any()  # no ReLU on the logit
    assert (BatchedMLP(2, 3, [4]).forward(torch.randn(50, 3)) >= 0).all()


def test_mix_is_the_gate_weighted_sum_of_experts():
    gates = torch.tensor([[[0.25, 0.75]], [[1.0, 0.0]]])  # [G=2, B=1, E=2]
    experts = torch.tensor([[[4.0, 8.0]], [[0.0, 4.0]]])  # [E=2, B=1, H=2]
    torch.testing.assert_close(mix(gates, experts), torch.tensor([[[1.0, 5.0]], [[4.0, 8.0]]]))
    per_gate = experts.unsqueeze(0).expand(2, 2, 1, 2)
    torch.testing.assert_close(mix(gates, per_gate), mix(gates, experts))


def test_gates_sum_to_one_and_towers_give_batch_by_task():
    torch.manual_seed(0)
    weights = Gates(3, 6, 4)(torch.randn(10, 6))
    assert weights.shape == (3, 10, 4)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 10))
    assert Towers(5, 6, [3])(torch.randn(5, 10, 6)).shape == (10, 5)
