"""Masked per-task losses picked by each task's objective, and the strategies that weigh task losses into one.

A binary objective's task trains with binary cross-entropy on its logit; a continuous objective's with
the mean squared error or the Huber loss on its raw output (`Objective.loss`).

Strategies take the schema first, so that a config can name them by class path and the
LightningModule passes the schema in (as it does for architectures):

- `FixedWeights`: constant per-task weights (default 1).
- `UncertaintyWeighting`: learned log-variances, Kendall, Gal & Cipolla (CVPR 2018), in the
  classification form for binary tasks and the regression form for continuous ones.
- `GradNorm`: Chen et al. (ICML 2018), weights learned so that the tasks' gradient norms at the last
  shared layer train at similar rates. Chosen over PCGrad because it needs one extra batched
  gradient on one small tensor and fits Lightning's automatic optimisation, where PCGrad needs a
  backward pass per task over every shared parameter and manual optimisation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mtr.errors import InputError
from mtr.schema import DatasetSchema

# Elementwise losses (reduction="none") of raw outputs against labels, by `Objective.loss`.
LOSS_FUNCTIONS: dict[str, Callable[..., torch.Tensor]] = {
    "bce": F.binary_cross_entropy_with_logits,
    "mse": F.mse_loss,
    "huber": F.huber_loss,
}


def task_loss_names(schema: DatasetSchema) -> tuple[str, ...]:
    """Each task's loss ("bce", "mse" or "huber"), in task order, from its objective."""
    return tuple(schema.objective(t.objective).loss for t in schema.tasks)


def masked_losses(
    outputs: torch.Tensor, labels: torch.Tensor, masks: torch.Tensor, losses: Sequence[str]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean loss per task over labelled rows only, each task with its own loss.

    Args:
        outputs: [B, T] raw outputs (logits of binary tasks); labels: [B, T]; masks: [B, T], 1 where the task
            has a label; losses: [T] names in `LOSS_FUNCTIONS` (see `task_loss_names`).

    Returns:
        task_losses [T] = sum_b mask * loss / max(sum_b mask, 1) (0 for a task without labelled rows),
        and labelled [T] bool, whether the task had any labelled row.
    """
    first, *others = dict.fromkeys(losses)
    elementwise = LOSS_FUNCTIONS[first](outputs, labels, reduction="none")
    for name in others:  # only with mixed kinds: a schema of binary tasks runs one loss and builds no mask
        loss = LOSS_FUNCTIONS[name](outputs, labels, reduction="none")
        # Each loss is computed on every column and kept where the task uses it: one kernel per loss, no
        # column copies; the other columns' values are finite, so where() passes them no gradient.
        columns = torch.tensor([n == name for n in losses], device=outputs.device)
        elementwise = torch.where(columns, loss, elementwise)
    # where(), not a product: a masked row's loss cannot leak into the gradient even if it were not finite.
    elementwise = torch.where(masks > 0, elementwise, torch.zeros_like(elementwise))
    counts = masks.sum(dim=0)
    return elementwise.sum(dim=0) / counts.clamp(min=1), counts > 0


class LossWeighting(nn.Module):
    """Combines per-task losses into the scalar that is minimised.

    Args:
        schema: the dataset schema (task names and order).
    """

    needs_shared_weight = False  # gradient-based strategies need the architecture's last shared layer

    def __init__(self, schema: DatasetSchema) -> None:
        super().__init__()
        self.task_names = schema.task_names

    def forward(
        self, task_losses: torch.Tensor, labelled: torch.Tensor, shared_weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Args: task_losses: [T]; labelled: [T] bool; shared_weight: the architecture's last shared
        layer, for gradient-based strategies. Returns the scalar training loss."""
        raise NotImplementedError

    def task_weights(self) -> torch.Tensor:
        """The current effective weight of each task [T], for logging."""
        raise NotImplementedError


class FixedWeights(LossWeighting):
    """Weighted sum of task losses with constant weights.

    Args:
        schema: the dataset schema.
        weights: task name -> weight; tasks not named get 1.
    """

    def __init__(self, schema: DatasetSchema, weights: dict[str, float] | None = None) -> None:
        super().__init__(schema)
        weights = weights or {}
        unknown = sorted(set(weights) - set(self.task_names))
        if unknown:
            raise InputError(f"loss_weighting.weights: unknown task(s) {unknown}; tasks: {self.task_names}")
        self.register_buffer("weights", torch.tensor([float(weights.get(n, 1.0)) for n in self.task_names]))

    def forward(
        self, task_losses: torch.Tensor, labelled: torch.Tensor, shared_weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        # An unlabelled task's loss is already 0, so it contributes nothing.
        return (self.weights * task_losses).sum()

    def task_weights(self) -> torch.Tensor:
        return self.weights


class UncertaintyWeighting(LossWeighting):
    """Kendall et al. (2018) homoscedastic uncertainty weighting.

    loss = sum_t c_t exp(-s_t) * L_t + s_t / 2 over tasks labelled in the batch, with s_t = log sigma_t^2
    learned; c_t = 1 for binary tasks (the paper's classification form) and 1/2 for continuous ones (its
    regression form, L / (2 sigma^2) + log sigma). Unlabelled tasks are left out entirely: their regulariser
    alone would drive s_t down.

    Args:
        schema: the dataset schema.
        initial_log_variance: starting s_t for every task (0 means weight c_t).
    """

    def __init__(self, schema: DatasetSchema, initial_log_variance: float = 0.0) -> None:
        super().__init__(schema)
        self.log_variance = nn.Parameter(torch.full((len(self.task_names),), float(initial_log_variance)))
        # Derived from the schema, so not saved: checkpoints keep the same state as before continuous tasks.
        scale = [1.0 if loss == "bce" else 0.5 for loss in task_loss_names(schema)]
        self.register_buffer("loss_scale", torch.tensor(scale), persistent=False)

    def forward(
        self, task_losses: torch.Tensor, labelled: torch.Tensor, shared_weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        terms = self.loss_scale * torch.exp(-self.log_variance) * task_losses + 0.5 * self.log_variance
        return torch.where(labelled, terms, torch.zeros_like(terms)).sum()

    def task_weights(self) -> torch.Tensor:
        return self.loss_scale * torch.exp(-self.log_variance.detach())


def gradnorm_loss(
    weights: torch.Tensor, grad_norms: torch.Tensor, loss_ratios: torch.Tensor, labelled: torch.Tensor, alpha: float
) -> torch.Tensor:
    """GradNorm's objective for the task weights (Chen et al. 2018, eq. 2), over labelled tasks.

    Args:
        weights: [T] task weights w_t (the only input that receives a gradient).
        grad_norms: [T] norms of the unweighted task gradients at the shared layer, ||grad L_t||.
        loss_ratios: [T] L_t / L_t(0), the inverse training rate.
        labelled: [T] bool, tasks present in the batch.
        alpha: strength of the pull towards equal training rates.

    Returns:
        sum_t |w_t ||grad L_t|| - mean_G * r_t^alpha| with r_t the relative inverse training rate;
        the target is a constant, as in the paper.
    """
    present = labelled.to(weights.dtype)
    count = present.sum().clamp(min=1)
    weighted_norms = weights * grad_norms.detach()  # G_t = ||grad (w_t L_t)|| = w_t ||grad L_t||
    mean_norm = (weighted_norms.detach() * present).sum() / count
    ratios = loss_ratios.detach()
    relative_rate = ratios / ((ratios * present).sum() / count).clamp(min=1e-12)
    target = (mean_norm * relative_rate.pow(alpha)).detach()
    return ((weighted_norms - target).abs() * present).sum()


class GradNorm(LossWeighting):
    """GradNorm task weights, learned by the same optimiser as the model.

    The model parameters see sum_t w_t L_t with w_t held constant; w_t sees only `gradnorm_loss`.
    Weights are renormalised to sum to the number of tasks before every use (the paper does it
    after every step). Needs an architecture with a `last_shared_weight` (not the single-task one).
    Cost: the per-task gradients run one backward per task through towers and gates (batched with
    vmap); measured on one CPU thread, a census MMoE step (2 tasks) takes ~1.4x a fixed-weight step,
    a 14-task messaging step ~7x.

    Args:
        schema: the dataset schema.
        alpha: GradNorm's asymmetry; 0 equalises gradient norms, larger values favour slow tasks.
    """

    needs_shared_weight = True

    def __init__(self, schema: DatasetSchema, alpha: float = 1.5) -> None:
        super().__init__(schema)
        n_tasks = len(self.task_names)
        self.alpha = alpha
        self.weights = nn.Parameter(torch.ones(n_tasks))
        # L_t(0): each task's loss the first time it is labelled; NaN until then.
        self.register_buffer("initial_losses", torch.full((n_tasks,), float("nan")))

    def forward(
        self, task_losses: torch.Tensor, labelled: torch.Tensor, shared_weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        if shared_weight is None:
            raise InputError("loss_weighting GradNorm needs an architecture with a shared layer (last_shared_weight)")
        n_tasks = task_losses.shape[0]
        with torch.no_grad():
            self.weights.clamp_(min=1e-3)
            self.weights.mul_(n_tasks / self.weights.sum())
        total = (self.weights.detach() * task_losses).sum()
        if not (self.training and torch.is_grad_enabled() and shared_weight.requires_grad):
            return total
        # One batched backward to the shared layer: row t of the identity selects task t's loss.
        eye = torch.eye(n_tasks, dtype=task_losses.dtype, device=task_losses.device)
        (grads,) = torch.autograd.grad(task_losses, shared_weight, eye, retain_graph=True, is_grads_batched=True)
        grad_norms = grads.flatten(1).norm(dim=1)
        with torch.no_grad():
            first = labelled & torch.isnan(self.initial_losses)
            self.initial_losses.copy_(torch.where(first, task_losses.detach(), self.initial_losses))
        ratios = torch.nan_to_num(task_losses.detach() / self.initial_losses, nan=1.0, posinf=1.0)
        return total + gradnorm_loss(self.weights, grad_norms, ratios, labelled, self.alpha)

    def task_weights(self) -> torch.Tensor:
        return self.weights.detach()
