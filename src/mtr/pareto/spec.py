"""What a Pareto study searches, how it scores its trials and how it chooses: `ParetoSpec` and its sampler.

The problem's objective table gives the defaults: the study's objectives are the table's objectives with
their directions, and the selection rule is "max_<the table's first maximised objective>" (for the
messaging table "max_conversion"); `ParetoSpec.resolve` fills them in once the problem is loaded.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import optuna

from mtr.errors import InputError
from mtr.objectives import Objective
from mtr.ope.estimators import ESTIMATORS, Z_95
from mtr.pareto.limits import Limits
from mtr.scoring.policy import PolicyConfig
from mtr.scoring.weights import SEND_COST, SETTINGS, FusionWeights
from mtr.studies.space import Param, parse_space

Direction = Literal["maximize", "minimize"]
KNEE, MAX_PREFIX = "knee", "max_"
THRESHOLD, TEMPERATURE = "threshold", "temperature"
POLICY_PARAMS = (THRESHOLD, TEMPERATURE)


@dataclass(frozen=True)
class SamplerSpec:
    """The sampler proposing weights.

    Args:
        name: "nsga2" (NSGAIISampler), "tpe" (multi-objective TPESampler) or "random".
        population_size: NSGA-II generation size.
        n_startup_trials: TPE random trials before its model.
        seed: base seed; a process seeds its sampler with seed + the trials already in the study, so that
            cooperating processes do not propose the same points.
    """

    name: Literal["nsga2", "tpe", "random"] = "nsga2"
    population_size: int = 20
    n_startup_trials: int = 10
    seed: int | None = 0

    def build(self, offset: int = 0) -> optuna.samplers.BaseSampler:
        seed = None if self.seed is None else self.seed + offset
        if self.name == "nsga2":
            return optuna.samplers.NSGAIISampler(population_size=self.population_size, seed=seed)
        if self.name == "tpe":
            return optuna.samplers.TPESampler(n_startup_trials=self.n_startup_trials, seed=seed, constant_liar=True)
        if self.name == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        raise InputError(f"sampler.name: must be nsga2, tpe or random, got {self.name!r}")


@dataclass(frozen=True)
class ParetoSpec:
    """What the study searches and how it scores and chooses.

    Args:
        params: search space: an objective's weight (conversion, engagement, ...), send_cost, threshold or
            temperature -> {type: float, low, high, log} (as in `mtr.studies.space`).
        fixed: FusionWeights fields held fixed, e.g. {conversion: 1.0} (scores are scale-free, so fixing one
            weight removes a redundant dimension) or {transform: log, per_channel: {...}}.
        policy: the policy's fixed fields: threshold, temperature (a softmax policy), cap.
        objectives: reward name -> "maximize" / "minimize"; rewards: the objectives and send_volume (mean per
            opportunity). Default: the objective table's objectives and directions.
        constraints: reward name -> its budget, the largest allowed value per opportunity (`unsubscribe: 0.001`,
            short for `{max: 0.001}`), or its floor (`retention: {min: 0.66}`, a guardrail: `mtr.pareto.limits`).
        estimator: a registered off-policy estimator (`mtr.ope.estimators.ESTIMATORS`): dros (the default, the one
            experiments/ope_simulator measures best on fused-score policies), dr, switch_dr, snips, ips, ...
        selection: "max_<objective>" or "knee" (see the module docstring); default: max of the table's first
            maximised objective.
        sampler: the Optuna sampler.
        prune: prune dominated candidates once (exact; see `mtr.ope.evaluator`).
        holdout: share of the users whose opportunities the study never sees while it searches and selects;
            the chosen point is re-estimated on them (an independent sample, so the optimiser's curse does
            not carry over to the reported estimate).
        z: interval half-width in standard errors: a constraint is met when estimate + z * SE is within its
            budget, and max_<objective> ranks by estimate - z * SE (default: the 95% two-sided interval).
        split_seed: seed of the user split.
    """

    params: Mapping[str, Mapping[str, Any]]
    fixed: Mapping[str, Any] = field(default_factory=dict)
    policy: Mapping[str, Any] = field(default_factory=dict)
    objectives: Mapping[str, Direction] = field(default_factory=dict)
    constraints: Mapping[str, float | Mapping[str, float]] = field(default_factory=dict)
    estimator: str = "dros"
    selection: str = ""
    sampler: SamplerSpec = field(default_factory=SamplerSpec)
    prune: bool = True
    holdout: float = 0.5
    z: float = Z_95
    split_seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.holdout < 1:
            raise InputError(f"holdout: must be a share of the users in (0, 1), got {self.holdout}")
        if not self.z >= 0:
            raise InputError(f"z: must be a non-negative number of standard errors, got {self.z}")
        space = self.space()
        for param in space:
            if param.key in (*SETTINGS[1:], "weights"):
                raise InputError(
                    f"params.{param.key}: not a searched field (search weights, send_cost, {POLICY_PARAMS})"
                )
            if param.type != "float":
                raise InputError(
                    f"params.{param.key}.type: weights and policy parameters are floats, got {param.type!r}"
                )
        for section, names in (("fixed", self.fixed), ("policy", self.policy)):
            clash = sorted({p.key for p in space} & set(names))
            if clash:
                raise InputError(f"{section}: {clash} are also searched in params")
        misplaced = sorted(set(self.fixed) & set(POLICY_PARAMS))
        if misplaced:
            raise InputError(f"fixed: {misplaced} are policy fields; give them under policy")
        for name, direction in self.objectives.items():
            if direction not in ("maximize", "minimize"):
                raise InputError(f"objectives.{name}: must be 'maximize' or 'minimize', got {direction!r}")
        if self.estimator not in ESTIMATORS:
            raise InputError(f"estimator: must be one of {list(ESTIMATORS)}, got {self.estimator!r}")
        if self.selection not in ("", KNEE) and not self.selection.startswith(MAX_PREFIX):
            raise InputError(f"selection: must be 'knee' or 'max_<objective>', got {self.selection!r}")
        Limits.parse(self.constraints)  # every limit checked once, here
        self.weights({})  # fixed fields are checked by FusionWeights itself
        self.policy_config({})

    @cached_property
    def limits(self) -> Limits:
        """The constraints as budgets and floors (parsed once: every trial reads them)."""
        return Limits.parse(self.constraints)

    def space(self) -> tuple[Param, ...]:
        return parse_space(self.params)

    def weights(self, values: Mapping[str, float]) -> FusionWeights:
        """The FusionWeights of sampled `values` (policy parameters excluded) over the fixed fields."""
        sampled = {k: v for k, v in values.items() if k not in POLICY_PARAMS}
        try:
            return FusionWeights(**{**self.fixed, **sampled})
        except TypeError as error:
            raise InputError(f"fixed: {error}") from error

    def policy_config(self, values: Mapping[str, float]) -> PolicyConfig:
        """The policy of sampled `values` (threshold, temperature) over the fixed policy fields."""
        sampled = {k: float(v) for k, v in values.items() if k in POLICY_PARAMS}
        return PolicyConfig.from_dict({**self.policy, **sampled}, "policy")

    def resolve(self, objectives: Sequence[Objective], reward_names: Sequence[str]) -> ParetoSpec:
        """The spec on a problem: objectives and selection defaulted from its objective table, every name checked.

        Args:
            objectives: the problem's objective table.
            reward_names: the rewards of its logs (the objectives and send_volume).
        """
        names = [o.name for o in objectives]
        unknown = sorted(p.key for p in self.space() if p.key not in (*names, SEND_COST, *POLICY_PARAMS))
        if unknown:
            raise InputError(f"params: {unknown} are neither objectives of the data {names} nor policy fields")
        try:
            self.weights({}).named(objectives)
        except InputError as error:
            raise InputError(f"fixed: {error}") from error
        chosen = dict(self.objectives) or {o.name: o.direction for o in objectives}
        for section, keys in (("objectives", chosen), ("constraints", self.constraints)):
            missing = sorted(set(keys) - set(reward_names))
            if missing:
                raise InputError(f"{section}: {missing} are not rewards of the logs (rewards: {list(reward_names)})")
        if len(chosen) < 2:
            raise InputError("objectives: a Pareto study needs at least two objectives")
        maximised = [n for n in (*names, *chosen) if chosen.get(n) == "maximize"]
        selection = self.selection or (f"{MAX_PREFIX}{maximised[0]}" if maximised else KNEE)
        if selection != KNEE and selection.removeprefix(MAX_PREFIX) not in chosen:
            raise InputError(
                f"selection: {selection!r} needs {selection.removeprefix(MAX_PREFIX)!r} among the objectives"
            )
        return dataclasses.replace(self, objectives=chosen, selection=selection)
