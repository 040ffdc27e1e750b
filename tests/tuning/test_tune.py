"""`mtr tune`: two workers share a study, a restart resumes it, failed and pruned trials are kept, bad input named."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import socket
import subprocess
import sys
import time
from dataclasses import is_dataclass
from pathlib import Path
from typing import Any

import optuna
import polars as pl
import pytest
import yaml
from optuna.trial import FrozenTrial, TrialState

from mtr.cli import main
from mtr.errors import InputError
from mtr.studies.storage import GRACE_S, derived_seed, open_storage
from mtr.tuning.commands import tune
from mtr.tuning.worker import CLAIMED, PrunerConfig, SamplerConfig, Sweep, run_worker

# Tiny trials: one epoch of two batches of a small MMoE.
TOY_TRAINING = {
    "trainer": "configs/trainer/default.yaml",
    "model": "configs/model/mmoe.yaml",
    "data.batch_size": 256,
    "trainer.max_epochs": 1,
    "trainer.limit_train_batches": 2,
    "trainer.log_every_n_steps": 1,
    "model.architecture.init_args.embedding_dim": 4,
}
LR = "model.optimizer.init_args.lr"
N_EXPERTS = "model.architecture.init_args.shared.init_args.n_experts"
EXPERT_HIDDEN = "model.architecture.init_args.shared.init_args.expert_hidden"
SPACE = {
    LR: {"type": "float", "low": 1e-3, "high": 3e-2, "log": True},
    N_EXPERTS: {"type": "int", "low": 1, "high": 3},
    EXPERT_HIDDEN: {"type": "categorical", "choices": ["[8]", "[16]"]},
    "model.architecture.init_args.dropout": {"type": "float", "low": 0.0, "high": 0.2},
    "model.loss_weighting.class_path": {
        "type": "categorical",
        "choices": ["mtr.training.losses.FixedWeights", "mtr.training.losses.UncertaintyWeighting"],
    },
}


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """Config paths in the sweep are relative to the repository root, as when `mtr tune` runs there."""
    monkeypatch.chdir(Path(__file__).resolve().parents[2])


def toy_sweep(toy_dataset: Path, root: Path, **kwargs: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "study_name": "toy",
        "n_trials": 3,
        "params": SPACE,
        "train_overrides": {**TOY_TRAINING, "data.path": str(toy_dataset)},
        "root": root,
        "storage": f"sqlite:///{root / 'study.db'}",
        "sampler": SamplerConfig(seed=0),
        "pruner": PrunerConfig(name="none"),
        "dry_run": False,
    }
    arguments.update(kwargs)
    return arguments


def run_tune(arguments: dict[str, Any]) -> dict[str, Any]:
    """`mtr tune` through its command line, with the sweep in a YAML config like a user's."""
    config = Path(arguments["root"]).with_suffix(".yaml")
    plain = json.loads(json.dumps(arguments, default=lambda v: dataclasses.asdict(v) if is_dataclass(v) else str(v)))
    config.write_text(yaml.safe_dump(plain, sort_keys=False))
    main(["tune", "--config", str(config)])
    return json.loads((Path(arguments["root"]) / "summary" / "best.json").read_text())


def load(root: Path) -> optuna.Study:
    return optuna.load_study(study_name="toy", storage=f"sqlite:///{root / 'study.db'}")


def trained(study: optuna.Study) -> list[FrozenTrial]:
    """The study's trials without surplus ones: two workers that ask for a trial at the same instant past the
    target record the later one as a failed, untrained "surplus" trial (see `mtr.tuning.worker.run_trial`)."""
    trials = study.get_trials()
    for surplus in (t for t in trials if t.user_attrs.get("surplus")):
        assert surplus.state == TrialState.FAIL and "run_dir" not in surplus.user_attrs
    return [t for t in trials if not t.user_attrs.get("surplus")]


def test_two_workers_share_one_study_and_a_restart_resumes_it(toy_dataset: Path, tmp_path: Path) -> None:
    root = tmp_path / "sweep"
    best = run_tune(toy_sweep(toy_dataset, root, workers=2, torch_threads=1))

    trials = trained(load(root))
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3  # the study's target, not 2 x 3
    workers = {t.user_attrs["worker"] for t in trials}
    assert len(workers) == 2 and f":{os.getpid()}" not in " ".join(workers)  # two spawned processes
    for trial in trials:
        assert (Path(trial.user_attrs["run_dir"]) / "config.yaml").is_file()
        assert trial.user_attrs["run_dir"] == str(root / f"trial_{trial.number}")
        assert 0.0 < trial.value <= 1.0  # best val/selection (mean AUC)
    table = pl.read_csv(root / "summary" / "trials.csv").filter(pl.col("state") == "COMPLETE")
    assert table["number"].to_list() == [t.number for t in trials]
    assert table["value"].max() == pytest.approx(best["best"]["value"])
    assert best["best"]["params"] == trials[int(table["value"].arg_max())].params
    assert best["n_trials"]["COMPLETE"] == 3
    assert "--model.optimizer.init_args.lr" in best["best"]["command"]

    # Restarted with the same study name and storage and a larger target: one more trial, old ones kept.
    run_tune(toy_sweep(toy_dataset, root, n_trials=4))
    resumed = trained(load(root))
    assert len(resumed) == 4 and resumed[3].state == TrialState.COMPLETE
    assert [t.value for t in resumed[:3]] == [t.value for t in trials]
    assert resumed[3].user_attrs["worker"].endswith(f":{os.getpid()}")
    # At its target, a restarted sweep runs nothing and rewrites the same summary.
    assert run_tune(toy_sweep(toy_dataset, root, n_trials=4))["n_trials"]["COMPLETE"] == 4
    assert len(trained(load(root))) == 4


def test_running_trials_of_other_workers_count_towards_the_target(tmp_path: Path) -> None:
    storage = f"journal:{tmp_path / 'journal.log'}"
    study = optuna.create_study(storage=open_storage(storage), study_name="toy", direction="maximize")
    study.ask()  # another worker's trial, still running
    sweep = Sweep("toy", storage, n_trials=1, root=tmp_path, params=())
    assert run_worker(sweep) == 0
    assert len(study.get_trials(states=CLAIMED)) == 1


def test_failed_trials_are_recorded_and_stop_a_worker(toy_dataset: Path, tmp_path: Path) -> None:
    root = tmp_path / "sweep"
    space = {EXPERT_HIDDEN: {"type": "categorical", "choices": ["[wide]"]}}
    with pytest.raises(RuntimeError, match=r"trials \[0, 1\] failed in a row"):
        tune(**toy_sweep(toy_dataset, root, params=space, max_failures=2))
    assert [t.state for t in load(root).get_trials()] == [TrialState.FAIL] * 2
    assert json.loads((root / "summary" / "best.json").read_text())["n_trials"] == {"FAIL": 2}


def test_pruned_trials_are_recorded(toy_dataset: Path, tmp_path: Path) -> None:
    root = tmp_path / "sweep"
    space = {"model.optimizer.init_args.lr": {"type": "categorical", "choices": [0.03, 1e-9]}}
    storage = open_storage(f"sqlite:///{root / 'study.db'}")
    study = optuna.create_study(storage=storage, study_name="toy", direction="maximize")
    study.enqueue_trial({"model.optimizer.init_args.lr": 0.03})  # learns: sets the median
    study.enqueue_trial({"model.optimizer.init_args.lr": 1e-9})  # does not learn: below the median at epoch 0
    pruner = PrunerConfig("median", n_startup_trials=1, n_warmup_steps=0)
    overrides = {
        **TOY_TRAINING,
        "data.path": str(toy_dataset),
        "trainer.max_epochs": 2,
        "trainer.limit_train_batches": 6,
    }
    summary = tune(**toy_sweep(toy_dataset, root, n_trials=2, params=space, pruner=pruner, train_overrides=overrides))
    trials = load(root).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.PRUNED]
    assert list(trials[1].intermediate_values) == [0]  # stopped after its first validation
    assert summary["n_trials"] == {"COMPLETE": 1, "PRUNED": 1}
    table = pl.read_csv(root / "summary" / "trials.csv")
    assert table.select("state", "validated_epochs").rows() == [("COMPLETE", 2), ("PRUNED", 1)]
    assert summary["best"]["number"] == 0


@pytest.mark.parametrize(
    ("field", "spec", "named"),
    [
        ("model.optimizer.init_args.lr", {"type": "float", "low": 1e-4, "hihg": 1e-2}, "lr.hihg"),
        ("model.optimizer.init_args.lr", {"type": "floats", "low": 1e-4, "high": 1e-2}, "lr.type"),
        ("model.optimizer.init_args.lr", {"type": "float", "low": 0.0, "high": 1e-2, "log": True}, "lr.low"),
        (
            N_EXPERTS,
            {"type": "int", "low": 8, "high": 2},
            "n_experts.low",
        ),
        (
            N_EXPERTS,
            {"type": "int", "low": 1.5, "high": 4},
            "n_experts.low",
        ),
        (
            EXPERT_HIDDEN,
            {"type": "categorical", "choices": [[16]]},
            "choices",
        ),
        ("model..lr", {"type": "float", "low": 1e-4, "high": 1e-2}, "model..lr"),
    ],
)
def test_a_bad_search_space_field_is_named(tmp_path: Path, field: str, spec: dict[str, Any], named: str) -> None:
    arguments = toy_sweep(tmp_path, tmp_path / "sweep", params={field: spec})
    with pytest.raises(InputError, match=r"params\.\S*" + re.escape(named)):
        run_tune(arguments)
    assert not (tmp_path / "sweep" / "study.db").exists()  # nothing created before the space is valid


def test_dry_run_names_an_option_that_training_rejects(toy_dataset: Path, tmp_path: Path) -> None:
    space = {"model.architecture.init_args.n_expert": {"type": "int", "low": 1, "high": 4}}
    with pytest.raises(InputError, match="dry run failed.*--model.architecture.init_args.n_expert 1"):
        tune(**toy_sweep(toy_dataset, tmp_path / "sweep", params=space, dry_run=True))


def test_dry_run_needs_a_checkpoint_on_val_selection(toy_dataset: Path, tmp_path: Path) -> None:
    overrides = {**TOY_TRAINING, "data.path": str(toy_dataset), "trainer.callbacks": "[]"}
    with pytest.raises(InputError, match="ModelCheckpoint with monitor val/selection, mode max"):
        tune(**toy_sweep(toy_dataset, tmp_path / "sweep", train_overrides=overrides, dry_run=True))
    assert not (tmp_path / "sweep" / "study.db").exists()


def test_bad_storage_is_named(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="storage: 'runs/tune.db' is neither"):
        open_storage("runs/tune.db")


def test_committed_tune_config_runs_a_trial(toy_dataset: Path, tmp_path: Path) -> None:
    """configs/tune/sim_mmoe.yaml, pointed at the toy dataset and cut to one tiny trial: dry run, then a trial."""
    config = yaml.safe_load(Path("configs/tune/sim_mmoe.yaml").read_text())
    small = {"data.path": str(toy_dataset), "trainer.max_epochs": 1, "trainer.limit_train_batches": 2}
    config.update(n_trials=1, root=tmp_path / "sweep", train_overrides={**config["train_overrides"], **small})
    summary = tune(
        **{**config, "sampler": SamplerConfig(**config["sampler"]), "pruner": PrunerConfig(**config["pruner"])}
    )
    assert summary["n_trials"] == {"COMPLETE": 1}
    assert set(summary["best"]["params"]) == set(config["params"])


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # the test plays the dead worker with study.ask
def test_the_trial_of_a_killed_worker_is_retried_with_its_parameters(
    toy_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("mtr.studies.storage.HEARTBEAT_S", 1)
    monkeypatch.setattr("mtr.studies.storage.GRACE_S", 1)
    root = tmp_path / "sweep"
    arguments = toy_sweep(toy_dataset, root, n_trials=1, params={"model.optimizer.init_args.lr": SPACE[LR]})
    storage = open_storage(arguments["storage"])
    study = optuna.create_study(storage=storage, study_name="toy", direction="maximize")
    killed = study.ask({LR: optuna.distributions.FloatDistribution(1e-3, 3e-2, log=True)})
    storage.record_heartbeat(killed._trial_id)  # its worker's last sign of life, then it died mid-trial
    time.sleep(3.0)  # well past the 1 s grace period, also on a loaded machine
    tune(**arguments)
    trials = load(root).get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert trials[1].params == trials[0].params


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # the test plays the dead worker with study.ask
def test_a_restart_right_after_a_local_worker_was_killed_reruns_its_trial_without_waiting(
    toy_dataset: Path, tmp_path: Path
) -> None:
    root = tmp_path / "sweep"
    arguments = toy_sweep(toy_dataset, root, n_trials=1, params={"model.optimizer.init_args.lr": SPACE[LR]})
    storage = open_storage(arguments["storage"])  # the real 120 s grace period: no heartbeat goes stale here
    study = optuna.create_study(storage=storage, study_name="toy", direction="maximize")
    killed = study.ask({LR: optuna.distributions.FloatDistribution(1e-3, 3e-2, log=True)})
    storage.record_heartbeat(killed._trial_id)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    killed.set_user_attr("worker", f"{socket.gethostname()}:{int(gone.stdout)}")  # its process has exited
    start = time.monotonic()
    tune(**arguments)
    trials = load(root).get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert trials[1].params == trials[0].params
    assert time.monotonic() - start < GRACE_S  # it did not wait for the heartbeat to go stale


def test_no_two_workers_share_a_sampler_seed_across_starts_and_resumes() -> None:
    seeds = {derived_seed(0, index, trials) for index in range(4) for trials in range(50)}
    assert len(seeds) == 4 * 50  # seed + index + trials gave worker 1 at 0 trials the seed of worker 0 at 1
