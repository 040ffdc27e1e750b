"""One sweep worker: load the shared study and run trials until the study holds `n_trials` of them.

Each trial trains through the same LightningCLI path as `mtr fit` (base configs + sampled dotted
overrides), in its own run folder `ROOT/trial_{number}`, with Optuna's Lightning pruning callback on
"val/selection"; its value is the best "val/selection" of the run (higher is better).

Several workers, in one process tree or on many machines, cooperate only through the study's storage.
The target counts trials that finished (COMPLETE, PRUNED) or are running, so that K workers stop together at
`n_trials` instead of running K x n_trials. Failed trials are recorded and not counted; WAITING trials (enqueued
by a user, or re-queued after their worker died) are run first.
"""

from __future__ import annotations

import os
import shlex
import socket
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import optuna
from optuna.study import MaxTrialsCallback
from optuna.trial import FrozenTrial, TrialState

from mtr.errors import InputError, RunError
from mtr.studies.space import Param, as_overrides
from mtr.studies.storage import derived_seed, fail_dead_local_trials, fail_stale_trials, open_storage

if TYPE_CHECKING:
    from lightning.pytorch import Callback
    from lightning.pytorch.callbacks import ModelCheckpoint

    from mtr.training.lightning_cli import MtrCLI

SELECTION_KEY = "val/selection"  # the composite validation criterion of mtr.training.module
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
CLAIMED = (*FINISHED, TrialState.RUNNING)


@dataclass(frozen=True)
class SamplerConfig:
    """The sampler proposing hyperparameters.

    Args:
        name: "tpe" (Optuna's TPESampler with the constant liar, for parallel workers) or "random".
        n_startup_trials: TPE: random trials before the model of good and bad trials is used.
        seed: base seed; a worker seeds its sampler from (seed, its index, the trials already in the study)
            through NumPy's SeedSequence, so that no two workers, started together or on a resume, share a seed
            (with seed + index + trials, worker 1 of the first start and worker 0 of a resume after one trial
            drew the same parameters).
    """

    name: Literal["tpe", "random"] = "tpe"
    n_startup_trials: int = 10
    seed: int | None = None

    def build(self, index: int, trials_in_study: int) -> optuna.samplers.BaseSampler:
        seed = None if self.seed is None else derived_seed(self.seed, index, trials_in_study)
        if self.name == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        return optuna.samplers.TPESampler(n_startup_trials=self.n_startup_trials, seed=seed, constant_liar=True)


@dataclass(frozen=True)
class PrunerConfig:
    """The pruner stopping unpromising trials from their per-epoch val/selection.

    Args:
        name: "median" (Optuna's MedianPruner) or "none".
        n_startup_trials: trials that are never pruned, so that the median means something.
        n_warmup_steps: epochs of each trial that are never pruned.
    """

    name: Literal["median", "none"] = "median"
    n_startup_trials: int = 5
    n_warmup_steps: int = 0

    def build(self) -> optuna.pruners.BasePruner:
        if self.name == "none":
            return optuna.pruners.NopPruner()
        return optuna.pruners.MedianPruner(n_startup_trials=self.n_startup_trials, n_warmup_steps=self.n_warmup_steps)


@dataclass(frozen=True)
class Sweep:
    """Everything a worker needs; plain values, so that spawned worker processes receive it by pickling.

    Args:
        study_name: the Optuna study shared by all workers.
        storage: storage string (see `mtr.studies.storage.open_storage`).
        n_trials: the study's target of finished trials (not per worker).
        root: sweep folder; trial k trains in ROOT/trial_k.
        params: the search space.
        train_args: `mtr fit` arguments shared by all trials (configs and fixed overrides).
        sampler: the sampler.
        pruner: the pruner.
        max_failures: a worker stops after this many failed trials in a row (a broken setup, not bad luck).
        torch_threads: torch intra-op threads per worker (None: torch's default).
    """

    study_name: str
    storage: str
    n_trials: int
    root: Path
    params: tuple[Param, ...]
    train_args: tuple[str, ...] = ()
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    pruner: PrunerConfig = field(default_factory=PrunerConfig)
    max_failures: int = 3
    torch_threads: int | None = None

    def trial_argv(self, values: dict[str, object], run_dir: Path) -> list[str]:
        """The `mtr fit` command line of one trial: shared args, then sampled values, then its run folder."""
        return ["fit", *self.train_args, *as_overrides(values), "--trainer.default_root_dir", str(run_dir)]


class SurplusTrial(Exception):
    """A trial created after the study had reached its target (two workers started one at the same moment)."""


class StopAfterFailures:
    """Optuna callback: stop this worker after `limit` of its own trials failed in a row."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_a_row: list[int] = []

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if trial.state == TrialState.FAIL and not trial.user_attrs.get("surplus"):
            self.in_a_row.append(trial.number)
        elif trial.state != TrialState.FAIL:
            self.in_a_row = []
        if len(self.in_a_row) >= self.limit:
            study.stop()

    @property
    def tripped(self) -> bool:
        return len(self.in_a_row) >= self.limit


def worker_id() -> str:
    """hostname:pid, recorded on every trial so that a study shows which worker ran what."""
    return f"{socket.gethostname()}:{os.getpid()}"


def create_study(sweep: Sweep) -> optuna.Study:
    """Create the study, or load it when a sweep with this name already lives in the storage (resume)."""
    study = optuna.create_study(
        storage=open_storage(sweep.storage),
        study_name=sweep.study_name,
        direction="maximize",
        load_if_exists=True,
    )
    if list(study.directions) != [optuna.study.StudyDirection.MAXIMIZE]:
        raise InputError(f"study_name: study '{sweep.study_name}' in {sweep.storage} is not a maximised single value")
    return study


def count(study: optuna.Study, states: Sequence[TrialState]) -> int:
    """Number of the study's trials in `states`."""
    return len(study.get_trials(deepcopy=False, states=tuple(states)))


def run_worker(sweep: Sweep, index: int = 0) -> int:
    """Run trials of the shared study until it holds `sweep.n_trials` finished or claimed trials.

    Args:
        sweep: the sweep.
        index: this worker's number among those started together (seeds its sampler).

    Returns:
        The number of trials this worker ran (any state).

    Raises:
        RuntimeError: after `sweep.max_failures` failed trials in a row.
    """
    import torch

    import mtr.training.lightning_cli  # noqa: F401 (imported before the first trial, so that trial durations are training)

    if sweep.torch_threads is not None:
        torch.set_num_threads(sweep.torch_threads)
    storage = open_storage(sweep.storage)
    study = optuna.load_study(study_name=sweep.study_name, storage=storage, pruner=sweep.pruner.build())
    fail_stale_trials(study)  # before counting, so that the trials of killed workers do not count as running
    fail_dead_local_trials(study)  # a worker of this machine killed a moment ago: no need to wait for its heartbeat
    study.sampler = sweep.sampler.build(index, len(study.get_trials(deepcopy=False)))
    if count(study, CLAIMED) >= sweep.n_trials:
        return 0
    failures = StopAfterFailures(sweep.max_failures)
    ran: list[int] = []
    study.optimize(
        lambda trial: run_trial(sweep, study, trial),
        catch=(Exception,),
        callbacks=[MaxTrialsCallback(sweep.n_trials, states=CLAIMED), failures, lambda _, t: ran.append(t.number)],
    )
    if failures.tripped:
        raise RunError(
            f"worker {worker_id()} stopped: trials {failures.in_a_row} failed in a row; see their errors above"
        )
    return len(ran)


def run_trial(sweep: Sweep, study: optuna.Study, trial: optuna.Trial) -> float:
    """Train one sampled configuration; return its best val/selection (raises TrialPruned when pruned)."""
    trial.set_user_attr("worker", worker_id())
    earlier = [t for t in study.get_trials(deepcopy=False, states=CLAIMED) if t.number < trial.number]
    if len(earlier) >= sweep.n_trials:
        trial.set_user_attr("surplus", True)
        study.stop()
        raise SurplusTrial(f"trial {trial.number}: the study already had {sweep.n_trials} trials; not trained")
    from optuna_integration import PyTorchLightningPruningCallback

    values = {param.key: param.suggest(trial) for param in sweep.params}
    run_dir = sweep.root / f"trial_{trial.number}"
    argv = sweep.trial_argv(values, run_dir)
    trial.set_user_attr("run_dir", str(run_dir))
    trial.set_user_attr("command", shlex.join(["mtr", *argv]))
    checkpoint = selection_checkpoint(fit(argv, [PyTorchLightningPruningCallback(trial, monitor=SELECTION_KEY)]))
    if checkpoint.best_model_score is None:
        raise RuntimeError(f"trial {trial.number}: no checkpoint was selected on {SELECTION_KEY} in {run_dir}")
    trial.set_user_attr("best_checkpoint", str(checkpoint.best_model_path))
    return float(checkpoint.best_model_score)


def selection_checkpoint(cli: MtrCLI) -> ModelCheckpoint:
    """The run's ModelCheckpoint, which must keep the best val/selection: a trial's value is its best score."""
    checkpoint = cli.trainer.checkpoint_callback
    if checkpoint is None or checkpoint.monitor != SELECTION_KEY or checkpoint.mode != "max":
        raise InputError(f"train configs: the sweep needs a ModelCheckpoint with monitor {SELECTION_KEY}, mode max")
    return checkpoint


def fit(argv: list[str], callbacks: list[Callback]) -> MtrCLI:
    """Run `mtr fit` in this process; a rejected command line raises InputError instead of exiting.

    Lightning turns Ctrl-C during training into exit status 1; that stops the worker (KeyboardInterrupt,
    so Optuna records the trial as failed) instead of moving on to the next trial.
    """
    from mtr.training.lightning_cli import run_training_cli

    try:
        with warnings.catch_warnings():  # LightningCLI warns that `mtr tune`'s own sys.argv is not its args
            warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
            return run_training_cli(argv, extra_callbacks=callbacks)
    except SystemExit as exit_:
        if exit_.code == 2:  # jsonargparse's status for a bad command line; its reason is printed above
            raise InputError(f"the training command rejected: {shlex.join(['mtr', *argv])}") from None
        raise KeyboardInterrupt from exit_
