"""A Q-network that scores any set of candidates from their features: the long-term track's model.

The long-term track (`mtr.rl`) fits it by fitted-Q evaluation and iteration; serving exports it with its greedy
choice (`mtr.serving.long_term`). States and candidates are numeric feature vectors (`mtr.rl.features`).
"""

from __future__ import annotations

import torch
from torch import nn


class CandidateQNetwork(nn.Module):
    """Q(state, steps to go, candidate) = steps to go * (w . [relu(embed(state, steps to go) + embed(candidate)),
    one-hot(steps to go)] + b): a state is embedded once and scored against all its candidates with one addition;
    the last layer is linear in its features, so that it can be refitted exactly by least squares
    (`mtr.rl.fitted_q.fit_q`), and has an intercept per step, so that the exact fit leaves no mean error at any
    step."""

    def __init__(self, n_state: int, n_candidate: int, horizon: int, hidden: int = 64) -> None:
        super().__init__()
        self.horizon = horizon
        self.state = nn.Sequential(nn.Linear(n_state + 1, hidden), nn.ReLU(), nn.Linear(hidden, hidden))
        self.candidate = nn.Linear(n_candidate, hidden, bias=False)
        self.output = nn.Linear(hidden + horizon, 1)

    def embed_states(self, state: torch.Tensor, to_go: torch.Tensor) -> torch.Tensor:
        """[B, hidden] embeddings of B states [B, S] with `to_go` [B] steps left including this one."""
        return self.state(torch.cat([state, (to_go / self.horizon)[:, None]], dim=1))

    def hidden(self, embedded_states: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """[B, C, hidden] the candidate-dependent features of each state's candidates ([B, C, F], or [C, F])."""
        return torch.relu(embedded_states[:, None, :] + self.candidate(candidates))

    def features(self, state: torch.Tensor, to_go: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """[B, C, hidden + H] all the last layer's inputs: the hidden features and the one-hot steps to go."""
        hidden = self.hidden(self.embed_states(state, to_go), candidates)
        steps = nn.functional.one_hot(to_go.long() - 1, self.horizon).to(hidden.dtype)
        return torch.cat([hidden, steps[:, None, :].expand(-1, hidden.shape[1], -1)], dim=2)

    def forward(self, state: torch.Tensor, to_go: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """[B, C] values of B states and their candidates (the one-hot's weights are read, not multiplied)."""
        hidden = self.hidden(self.embed_states(state, to_go), candidates)
        weight, n_hidden = self.output.weight[0], hidden.shape[2]
        intercept = weight[n_hidden:][to_go.long() - 1] + self.output.bias
        return (hidden @ weight[:n_hidden] + intercept[:, None]) * to_go[:, None]


def send_gate(q: torch.Tensor, allowed: torch.Tensor, logging: torch.Tensor) -> torch.Tensor:
    """[B, C] the learned policy's probabilities from the values `q` [B, C] of each state's candidates: send nothing
    where its value is at least that of the logging policy's average send (its send probabilities renormalised
    over the allowed sends), else send one of the logging policy's sends, in its proportions (with probability 1:
    the logging policy itself sends nothing with some probability everywhere).

    What is learned is when to send, the decision whose long-term value differs between policies; which message
    goes is the logging policy's choice, so the policy never leaves the log's support. Comparing one value with
    one average avoids the upward bias of a maximum over a hundred noisy candidate values, which made a greedy
    choice send every day where every send cost active days.
    """
    sends = torch.where(allowed[:, 1:], logging[:, 1:], torch.zeros_like(logging[:, 1:]))
    total = sends.sum(dim=1, keepdim=True)
    share = sends / total.clamp_min(torch.finfo(sends.dtype).tiny)
    send = (total[:, 0] > 0) & ((share * q[:, 1:]).sum(dim=1) > q[:, 0])
    return torch.cat([(~send).to(share.dtype)[:, None], share * send.to(share.dtype)[:, None]], dim=1)
