"""Building blocks shared by every architecture: the feature arch (sparse + dense), batched MLPs for
experts, towers and per-task networks, gates and the gated mixture.

"Batched" means N independent networks evaluated with one einsum per layer instead of a Python loop
over networks, so 8 experts cost about as much as one wide layer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torchrec.modules.embedding_configs import EmbeddingBagConfig
from torchrec.modules.embedding_modules import EmbeddingBagCollection
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

from mtr.errors import InputError
from mtr.schema import DatasetSchema


def mlp(in_dim: int, hidden: Sequence[int], dropout: float = 0.0) -> nn.Sequential:
    """Linear -> ReLU (-> Dropout) for each width in `hidden`; an empty `hidden` is the identity."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_dim, width), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        in_dim = width
    return nn.Sequential(*layers)


class BatchedLinear(nn.Module):
    """`n` independent linear layers applied in one einsum.

    Args:
        n: number of independent layers.
        in_dim: input width.
        out_dim: output width.
    """

    def __init__(self, n: int, in_dim: int, out_dim: int) -> None:
        super().__init__()
        # Same distribution as nn.Linear's default initialisation, per network.
        bound = 1 / math.sqrt(in_dim)
        self.weight = nn.Parameter(torch.empty(n, in_dim, out_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n, 1, out_dim).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x: [B, in] (one input shared by all networks) or [n, B, in]. Returns [n, B, out]."""
        if x.dim() == 2:
            # One [B, in] x [in, n * out] matmul: much faster on CPU than a broadcast bmm or einsum.
            n, in_dim, out_dim = self.weight.shape
            flat = self.weight.permute(1, 0, 2).reshape(in_dim, n * out_dim)
            return (x @ flat).view(-1, n, out_dim).transpose(0, 1) + self.bias
        return torch.baddbmm(self.bias, x, self.weight)


class BatchedMLP(nn.Module):
    """`n` independent MLPs (experts, towers, per-task networks), each layer one batched matmul.

    Args:
        n: number of independent MLPs.
        in_dim: input width.
        widths: output width of each layer.
        dropout: dropout after each hidden activation.
        final_activation: apply ReLU (and dropout) after the last layer too; False for logit heads.
    """

    def __init__(
        self, n: int, in_dim: int, widths: Sequence[int], dropout: float = 0.0, final_activation: bool = True
    ) -> None:
        super().__init__()
        if not widths:
            raise InputError("BatchedMLP: widths must name at least one layer")
        dims = [in_dim, *widths]
        self.linears = nn.ModuleList(BatchedLinear(n, a, b) for a, b in zip(dims[:-1], dims[1:], strict=True))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.final_activation = final_activation
        self.out_dim = dims[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x: [B, in] or [n, B, in]. Returns [n, B, widths[-1]]."""
        last = len(self.linears) - 1
        for i, linear in enumerate(self.linears):
            x = linear(x)
            if i < last or self.final_activation:
                x = self.dropout(torch.relu(x))
        return x

    @property
    def last_weight(self) -> torch.Tensor:
        """The last layer's weight [n, in, out] (GradNorm measures task gradients here)."""
        return self.linears[-1].weight


class Gates(nn.Module):
    """`n_gates` softmax gates over `n_experts`, computed in one batched matmul.

    Args:
        n_gates: one per task (and one for PLE's shared experts).
        in_dim: width of the gate input.
        n_experts: number of experts each gate weighs.
    """

    def __init__(self, n_gates: int, in_dim: int, n_experts: int) -> None:
        super().__init__()
        self.linear = BatchedLinear(n_gates, in_dim, n_experts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x: [B, in] or [n_gates, B, in]. Returns gate weights [n_gates, B, n_experts], rows sum to 1."""
        logits = self.linear(x)
        # Written out: on CPU, torch.softmax over a last dimension of a few experts is ~5x slower.
        weights = torch.exp(logits - logits.amax(dim=-1, keepdim=True))
        return weights / weights.sum(dim=-1, keepdim=True)


def mix(gates: torch.Tensor, experts: torch.Tensor) -> torch.Tensor:
    """Gate-weighted sum of expert outputs.

    Args:
        gates: [G, B, E] weights; experts: [E, B, H] shared by all gates, or [G, E, B, H] per gate.

    Returns:
        [G, B, H].
    """
    # A broadcast product summed over experts: an einsum here becomes B tiny matmuls, about 2x slower on CPU.
    return (gates.permute(0, 2, 1).unsqueeze(-1) * experts).sum(dim=-3)  # [G, E, B, 1] * [(G,) E, B, H]


class Towers(nn.Module):
    """One MLP tower per task ending in one raw output (a binary task's logit, a continuous task's value), batched.

    Args:
        n_tasks: number of towers.
        in_dim: width of each tower's input.
        hidden: hidden widths of each tower (may be empty: a linear head).
        dropout: dropout after hidden activations.
    """

    def __init__(self, n_tasks: int, in_dim: int, hidden: Sequence[int], dropout: float = 0.0) -> None:
        super().__init__()
        self.in_dim = in_dim
        self.net = BatchedMLP(n_tasks, in_dim, [*hidden, 1], dropout, final_activation=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x: [B, in] shared or [n_tasks, B, in] per task. Returns raw outputs [B, n_tasks]."""
        return self.net(x).squeeze(-1).t()


class FeatureArch(nn.Module):
    """Sparse features through one TorchRec EmbeddingBagCollection, dense features through an MLP.

    Every sparse feature has its own table of `schema` vocabulary size + 1 rows (id 0 = unknown).

    Args:
        schema: the dataset schema (feature order and vocabulary sizes).
        embedding_dim: width of each sparse feature's embedding.
        dense_hidden: widths of the dense MLP; empty passes the dense features through unchanged.
        copies: embedding copies per feature (the single-task baseline gives each task its own);
            the output then has `copies` independent slices.
    """

    def __init__(
        self, schema: DatasetSchema, embedding_dim: int, dense_hidden: Sequence[int] = (), copies: int = 1
    ) -> None:
        super().__init__()
        if embedding_dim < 1:
            raise InputError(f"embedding_dim must be at least 1, got {embedding_dim}")
        self.sparse_names = [f.name for f in schema.sparse_features]
        self.n_dense = len(schema.dense_features)
        if not self.sparse_names and not self.n_dense:
            raise InputError(f"schema '{schema.name}' declares no features")
        self.copies = copies
        self.embedding_dim = embedding_dim
        tables = [
            EmbeddingBagConfig(
                name=f"t_{f.name}",
                embedding_dim=embedding_dim * copies,
                num_embeddings=f.num_embeddings,
                feature_names=[f.name],
            )
            for f in schema.sparse_features
        ]
        self.ebc = EmbeddingBagCollection(tables=tables, device=torch.device("cpu")) if tables else None
        if copies == 1:
            self.dense_arch: nn.Module = mlp(self.n_dense, dense_hidden)
        else:
            self.dense_arch = BatchedMLP(copies, self.n_dense, dense_hidden) if dense_hidden else nn.Identity()
        dense_out = dense_hidden[-1] if dense_hidden else self.n_dense
        self.out_dim = len(self.sparse_names) * embedding_dim + (dense_out if self.n_dense else 0)

    def forward(self, sparse: KeyedJaggedTensor, dense: torch.Tensor) -> torch.Tensor:
        """Args: sparse: one id per feature and row; dense: [B, n_dense].

        Returns:
            [B, out_dim] when copies == 1, else [copies, B, out_dim].
        """
        parts: list[torch.Tensor] = []
        batch = dense.shape[0]
        if self.ebc is not None:
            pooled = self.ebc(sparse).values()  # [B, F * copies * dim], feature-major
            if self.copies == 1:
                parts.append(pooled)
            else:
                pooled = pooled.view(batch, len(self.sparse_names), self.copies, self.embedding_dim)
                parts.append(pooled.permute(2, 0, 1, 3).reshape(self.copies, batch, -1))
        if self.n_dense:
            dense_out = self.dense_arch(dense)
            if self.copies > 1 and dense_out.dim() == 2:
                dense_out = dense_out.expand(self.copies, batch, dense_out.shape[-1])
            parts.append(dense_out)
        return torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0]
