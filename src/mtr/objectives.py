"""The objective table: what mtr predicts, fuses and evaluates, declared once as data.

Every stage iterates over an `Objective` table instead of naming objectives: the schema's tasks (one per
objective and channel, plus the organic "send nothing" outcomes), the label rules, the losses and metrics
(picked by `kind`), the fusion weights and their signs (from `direction`), the off-policy evaluator's
reward columns, the exported program's outputs and the Pareto study's default objectives. One order,
everywhere: the table's.

A dataset's `schema.json` carries the table of its objectives, so that a dataset with another objective
(for example a continuous purchase value) runs through every stage without code naming it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from mtr.errors import InputError

Kind = Literal["binary", "continuous"]
Direction = Literal["maximize", "minimize"]
LOSSES: dict[str, tuple[str, ...]] = {"binary": ("bce",), "continuous": ("mse", "huber")}


@dataclass(frozen=True)
class Objective:
    """One outcome of an opportunity that the ranking score trades off.

    Args:
        name: the objective's name, for example "conversion"; tasks are named `{name}_{channel}`.
        kind: "binary" (a 0/1 label, a probability is predicted) or "continuous" (a real-valued label).
        direction: "maximize" for a benefit, "minimize" for a cost (fusion subtracts it).
        exists_for_none: whether the outcome also happens without a send (organic conversion does,
            an unsubscribe from a message never sent does not); such objectives get a "none" task.
        value_scaled: fusion multiplies the prediction by the candidate's value signal (offer value).
        label_rule: the name of the rule in `mtr.data.labels` that computes the label from event logs.
        loss: the training loss: "bce" for binary objectives, "mse" or "huber" for continuous ones
            (default: the first allowed for the kind).
        description: what the objective means, for people reading a schema.
    """

    name: str
    kind: Kind = "binary"
    direction: Direction = "maximize"
    exists_for_none: bool = False
    value_scaled: bool = False
    label_rule: str = ""
    loss: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        if self.kind not in LOSSES:
            raise InputError(f"objective '{self.name}': kind must be one of {list(LOSSES)}, got {self.kind!r}")
        if self.direction not in ("maximize", "minimize"):
            raise InputError(f"objective '{self.name}': direction must be maximize or minimize, got {self.direction!r}")
        if not self.loss:
            object.__setattr__(self, "loss", LOSSES[self.kind][0])
        if self.loss not in LOSSES[self.kind]:
            raise InputError(
                f"objective '{self.name}': loss {self.loss!r} does not fit a {self.kind} objective "
                f"(allowed: {list(LOSSES[self.kind])})"
            )
        if not self.label_rule:
            object.__setattr__(self, "label_rule", self.name)

    @property
    def sign(self) -> float:
        """+1 for a benefit, -1 for a cost: how fusion adds the objective to a score."""
        return 1.0 if self.direction == "maximize" else -1.0


# The messaging platform's objectives, in the one order every stage uses.
MESSAGING_OBJECTIVES: tuple[Objective, ...] = (
    Objective(
        "conversion",
        exists_for_none=True,
        value_scaled=True,
        description="converted within 7 days of t0, before the next send (last touch)",
    ),
    Objective("engagement", description="opened the message within 48 h of the send"),
    Objective("retention", exists_for_none=True, description="active on a day in [d + 22, d + 28]"),
    Objective(
        "unsubscribe",
        direction="minimize",
        description="unsubscribed from the send's channel within 48 h of the send",
    ),
)


# Conversion as a decision's outcome: the same 7-day window from the decision time for every action, "send
# nothing" included (`mtr.data.labels`), so that a policy's value compares like with like. The per-send
# `conversion` label's window closes at the next send, so its meaning moves with the policy that sends.
DECISION_CONVERSION = Objective(
    "decision_conversion",
    exists_for_none=True,
    value_scaled=True,
    description="converted within 7 days of the decision, whatever the action (not cut by later sends)",
)
# The table of a study that decides: the decision's conversion in place of the per-send one.
DECISION_OBJECTIVES: tuple[Objective, ...] = (DECISION_CONVERSION, *MESSAGING_OBJECTIVES[1:])
ACTIVE_DAYS_8W = Objective(
    "active_days_8w",
    kind="continuous",
    exists_for_none=True,
    description="active days in the 8 weeks after the decision's day (d + 1 .. d + 56), whatever the action",
)
# The long-term track's table: the decision table plus the 8-week outcome the weariness of sends moves.
LONG_TERM_OBJECTIVES: tuple[Objective, ...] = (*DECISION_OBJECTIVES, ACTIVE_DAYS_8W)
# The tables a command can name (`mtr build-dataset --objectives decision`).
OBJECTIVE_TABLES: dict[str, tuple[Objective, ...]] = {
    "messaging": MESSAGING_OBJECTIVES,
    "decision": DECISION_OBJECTIVES,
    "long_term": LONG_TERM_OBJECTIVES,
}


def objective_names(objectives: Iterable[Objective]) -> tuple[str, ...]:
    return tuple(o.name for o in objectives)
