"""Known answers for the masked loss and the loss weighting strategies."""

from __future__ import annotations

import math

import pytest
import torch

from mtr.errors import InputError
from mtr.objectives import Objective
from mtr.schema import DatasetSchema, FeatureSpec, TaskSpec
from mtr.training.losses import FixedWeights, GradNorm, UncertaintyWeighting, gradnorm_loss, masked_losses


def two_task_schema(*objectives: Objective) -> DatasetSchema:
    """Tasks "click" (engagement) and "buy" (conversion, or the first of `objectives` if given)."""
    feature = FeatureSpec("plan", "sparse", "String", vocabulary=("free",))
    bought = objectives[0].name if objectives else "conversion"
    tasks = (TaskSpec("click", "engagement", "push", "y0"), TaskSpec("buy", bought, "push", "y1"))
    return DatasetSchema("two", (feature,), tasks, objectives=objectives)


def test_masked_bce_averages_over_labelled_rows_only_and_masks_the_gradient():
    logits = torch.tensor([[0.0, 2.0], [0.0, -1.0], [3.0, 5.0]], requires_grad=True)
    labels = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    masks = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    task_losses, labelled = masked_losses(logits, labels, masks, ("bce", "bce"))
    torch.testing.assert_close(task_losses, torch.tensor([math.log(2), 0.0]))  # two rows at logit 0
    assert labelled.tolist() == [True, False]
    task_losses.sum().backward()
    torch.testing.assert_close(logits.grad, torch.tensor([[-0.25, 0.0], [0.25, 0.0], [0.0, 0.0]]))


def test_each_task_takes_its_objectives_loss_over_labelled_rows() -> None:
    outputs = torch.tensor([[0.0, 2.0, 0.0], [0.0, 30.0, 3.0], [4.0, 50.0, 1.0]], requires_grad=True)
    labels = torch.tensor([[1.0, 4.0, 0.5], [0.0, 27.5, 0.0], [1.0, 0.0, 0.0]])
    masks = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [0.0, 0.0, 1.0]])
    task_losses, labelled = masked_losses(outputs, labels, masks, ("bce", "mse", "huber"))
    # bce at logit 0; squared errors 4 and 6.25; Huber (delta 1) 0.125, 2.5 and 0.5.
    expected = torch.tensor([math.log(2), (4.0 + 6.25) / 2, (0.125 + 2.5 + 0.5) / 3])
    torch.testing.assert_close(task_losses, expected)
    assert labelled.all()
    task_losses.sum().backward()
    # d mse / d output = 2 (output - label) / n: rows 0 and 1 only; Huber's gradient is clipped at 1.
    torch.testing.assert_close(outputs.grad[:, 1], torch.tensor([-2.0, 2.5, 0.0]))
    torch.testing.assert_close(outputs.grad[:, 2], torch.tensor([-0.5, 1.0, 1.0]) / 3)


def test_fixed_weights_and_unknown_task():
    weighting = FixedWeights(two_task_schema(), weights={"buy": 3.0})
    loss = weighting(torch.tensor([0.5, 0.25]), torch.tensor([True, True]))
    assert loss.item() == pytest.approx(0.5 + 3 * 0.25)
    with pytest.raises(InputError, match=r"unknown task\(s\) \['sell'\]"):
        FixedWeights(two_task_schema(), weights={"sell": 1.0})


def test_uncertainty_weighting_classification_form():
    weighting = UncertaintyWeighting(two_task_schema())
    with torch.no_grad():
        weighting.log_variance.copy_(torch.tensor([0.0, math.log(2.0)]))
    loss = weighting(torch.tensor([1.0, 2.0]), torch.tensor([True, True]))
    assert loss.item() == pytest.approx(1.0 + 2.0 / 2 + 0.5 * math.log(2.0))
    loss.backward()  # d/ds (exp(-s) L + s/2) = -exp(-s) L + 1/2
    torch.testing.assert_close(weighting.log_variance.grad, torch.tensor([-0.5, -0.5]))
    weighting.zero_grad()
    weighting(torch.tensor([1.0, 0.0]), torch.tensor([True, False])).backward()
    assert weighting.log_variance.grad[1].item() == 0.0  # an unlabelled task's variance is left alone
    torch.testing.assert_close(weighting.task_weights(), torch.tensor([1.0, 0.5]))


def test_uncertainty_weighting_takes_the_regression_form_for_a_continuous_task() -> None:
    spend = Objective("spend", kind="continuous", label_rule="conversion_value")
    weighting = UncertaintyWeighting(two_task_schema(spend))
    with torch.no_grad():
        weighting.log_variance.copy_(torch.tensor([0.0, math.log(2.0)]))
    # Binary: exp(-s) L + s / 2; continuous: L / (2 sigma^2) + log sigma = exp(-s) L / 2 + s / 2.
    loss = weighting(torch.tensor([1.0, 8.0]), torch.tensor([True, True]))
    assert loss.item() == pytest.approx(1.0 + 8.0 / 4 + 0.5 * math.log(2.0))
    torch.testing.assert_close(weighting.task_weights(), torch.tensor([1.0, 0.25]))
    assert "loss_scale" not in weighting.state_dict()  # checkpoints keep the state they had before


def test_gradnorm_loss_on_a_hand_case():
    weights = torch.ones(2, requires_grad=True)
    labelled = torch.tensor([True, True])
    # Equal training rates: target = mean G = 2 for both; |1 - 2| + |3 - 2| = 2.
    loss = gradnorm_loss(weights, torch.tensor([1.0, 3.0]), torch.tensor([0.5, 0.5]), labelled, alpha=1.5)
    assert loss.item() == pytest.approx(2.0)
    loss.backward()  # d/dw_t |w_t g_t - target| = sign * g_t: the task with the large gradient is pushed down
    torch.testing.assert_close(weights.grad, torch.tensor([-1.0, 3.0]))
    # Task 0 trains slower (ratio 2 vs 1): relative rates 4/3 and 2/3, alpha 1 -> targets 8/3 and 4/3.
    loss = gradnorm_loss(weights, torch.tensor([1.0, 3.0]), torch.tensor([2.0, 1.0]), labelled, alpha=1.0)
    assert loss.item() == pytest.approx((8 / 3 - 1) + (3 - 4 / 3))
    # A task absent from the batch takes no part.
    absent = gradnorm_loss(weights, torch.tensor([1.0, 3.0]), torch.tensor([0.5, 0.5]), torch.tensor([True, False]), 1)
    assert absent.item() == pytest.approx(0.0)


def test_gradnorm_moves_weight_to_the_task_with_smaller_gradients():
    torch.manual_seed(0)
    shared = torch.nn.Parameter(torch.randn(3))
    weighting = GradNorm(two_task_schema(), alpha=0.0)
    optimizer = torch.optim.SGD(weighting.parameters(), lr=0.02)
    x = torch.randn(3)
    for _ in range(300):
        # Task 1's loss is task 0's times 10: its gradient norm at `shared` is 10 times larger.
        base = (shared * x).sum().sigmoid()
        task_losses = torch.stack([base, 10 * base])
        optimizer.zero_grad()
        shared.grad = None
        weighting(task_losses, torch.tensor([True, True]), shared).backward()
        optimizer.step()
    with torch.no_grad():  # a call without gradients only renormalises the weights
        weighting(task_losses, torch.tensor([True, True]), shared)
    weights = weighting.task_weights()
    assert weights.sum().item() == pytest.approx(2.0)  # renormalised to the number of tasks
    # alpha 0 equalises w_t ||grad L_t||: w_0 = 10 w_1, so w = (20/11, 2/11).
    torch.testing.assert_close(weights, torch.tensor([20 / 11, 2 / 11]), atol=0.05, rtol=0)
    # The model's gradient is that of sum_t w_t L_t with w held constant: GradNorm's own term does not leak.
    shared.grad = None
    base = (shared * x).sum()
    weighting(torch.stack([base, 10 * base]), torch.tensor([True, True]), shared).backward()
    torch.testing.assert_close(shared.grad, (weights[0] + 10 * weights[1]) * x)


def test_gradnorm_needs_a_shared_layer():
    with pytest.raises(InputError, match="last_shared_weight"):
        GradNorm(two_task_schema())(torch.ones(2), torch.tensor([True, True]), None)
