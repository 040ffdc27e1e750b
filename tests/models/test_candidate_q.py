"""The long-term Q-network and its send gate, on answers known in advance."""

from __future__ import annotations

import torch

from mtr.models.candidate_q import CandidateQNetwork, send_gate


def test_the_gate_sends_nothing_unless_the_average_allowed_send_is_worth_more() -> None:
    q = torch.tensor([[1.0, 3.0, 0.0, 9.0], [1.0, 3.0, 0.0, 9.0], [5.0, 3.0, 0.0, 9.0], [1.0, 3.0, 0.0, 9.0]])
    allowed = torch.tensor(
        [[True, True, True, False], [True, False, False, False], [True, True, True, False], [True, False, False, True]]
    )
    logging = torch.tensor([[0.5, 0.1, 0.3, 0.1], [0.5, 0.2, 0.2, 0.1], [0.5, 0.1, 0.3, 0.1], [0.9, 0.1, 0.0, 0.0]])
    gate = send_gate(q, allowed, logging)
    # User 0: the allowed sends, in the logging policy's proportions 0.1 : 0.3, average 0.75 < 1: nothing.
    # User 2 the same sends against nothing worth 5: nothing. User 1 has no allowed send; user 3's only allowed
    # send has no logging probability: nothing for both.
    assert torch.equal(gate, torch.tensor([[1.0, 0, 0, 0], [1.0, 0, 0, 0], [1.0, 0, 0, 0], [1.0, 0, 0, 0]]))
    q[0, 2] = 2.0  # the average allowed send is now 0.25 * 3 + 0.75 * 2 = 2.25 > 1
    gate = send_gate(q, allowed, logging)
    torch.testing.assert_close(gate[0], torch.tensor([0.0, 0.25, 0.75, 0.0]))
    assert torch.allclose(gate.sum(1), torch.ones(4))


def test_the_network_is_linear_in_its_last_layer_features_times_the_steps_to_go() -> None:
    torch.manual_seed(0)
    network = CandidateQNetwork(n_state=5, n_candidate=4, horizon=6, hidden=8)
    with torch.no_grad():
        network.output.bias.zero_()
    state, to_go, candidates = torch.rand(3, 5), torch.tensor([1.0, 4.0, 6.0]), torch.rand(7, 4)
    features = network.features(state, to_go, candidates)
    expected = (features @ network.output.weight[0]) * to_go[:, None]
    torch.testing.assert_close(network(state, to_go, candidates), expected)
    assert features.shape == (3, 7, 8 + 6)
