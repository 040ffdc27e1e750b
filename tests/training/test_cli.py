"""The training CLI as researchers use it: configs, fast_dev_run per model, resume, predict, run folders."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
import torch
import yaml

from mtr.cli import main
from mtr.data.feature_config import FeatureConfig
from mtr.training.lightning_cli import run_training_cli

REPO_ROOT = Path(__file__).resolve().parents[2]
QUIET = ["--wandb", "false", "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]

# Every YAML in the repository and the command line that must accept it.
YAML_COMMANDS: dict[str, list[str]] = {
    "configs/experiment/*.yaml": ["fit", "--config"],
    "configs/model/*.yaml": ["fit", "--model"],
    "configs/data/*.yaml": ["fit", "--data"],
    "configs/trainer/*.yaml": ["fit", "--trainer"],
    "configs/sim/*.yaml": ["simulate", "--config"],
    "configs/tune/*.yaml": ["tune", "--config"],
    "configs/ab/*.yaml": ["ab", "simulate", "--config"],
    "configs/long_term/*.yaml": ["long-term", "--config"],
    "experiments/census_mmoe/*.yaml": ["fit", "--config", "experiments/census_mmoe/common.yaml", "--config"],
    "experiments/*/world.yaml": ["simulate", "--config"],
    "experiments/task_correlation/*.yaml": ["fit", "--config", "experiments/task_correlation/common.yaml", "--config"],
    "experiments/oracle_gap/*.yaml": ["fit", "--config", "configs/experiment/sim_mmoe.yaml", "--config"],
    "experiments/ab_*/config.yaml": ["ab", "analyze", "--config"],
    "experiments/ope_open_bandit/config.yaml": ["ope", "open-bandit", "--config"],
    "experiments/ope_simulator/config.yaml": ["ope", "simulator", "--config"],
    "configs/pareto/*.yaml": ["pareto", "--config"],
    "experiments/pareto_*/config.yaml": ["pareto", "--config"],
    "experiments/pareto_simulator/decision.yaml": ["pareto", "--config"],
    "experiments/pareto_hillstrom/train.yaml": ["fit", "--config"],
}


def _yaml_files() -> list[Path]:
    return sorted(p for folder in ("configs", "experiments") for p in (REPO_ROOT / folder).rglob("*.yaml"))


def _command_for(path: Path) -> list[str] | None:
    relative = path.relative_to(REPO_ROOT)
    matches = [command for pattern, command in YAML_COMMANDS.items() if relative.match(pattern)]
    return matches[0] if matches else None


@pytest.mark.parametrize("path", _yaml_files(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_every_yaml_is_accepted_by_its_command(path, monkeypatch, capsys):
    if path.relative_to(REPO_ROOT).match("configs/features/*.yaml"):
        # A feature config is a file `mtr build-dataset --features` reads whole, not a command's options.
        assert FeatureConfig.load(path).sparse
        return
    command = _command_for(path)
    assert command is not None, f"{path} is not mapped to a command in YAML_COMMANDS"
    monkeypatch.chdir(REPO_ROOT)
    with pytest.raises(SystemExit) as exit_info:
        main([*command, str(path.relative_to(REPO_ROOT)), "--print_config"])
    assert exit_info.value.code in (None, 0)
    assert yaml.safe_load(capsys.readouterr().out)  # the resolved config is printed


def test_config_typo_names_the_field(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(REPO_ROOT)
    typo = tmp_path / "typo.yaml"
    typo.write_text("model:\n  architecture:\n    init_args:\n      shared:\n        init_args: {n_expert: 4}\n")
    with pytest.raises(SystemExit):
        main(["fit", "--config", "configs/experiment/sim_mmoe.yaml", "--config", str(typo), "--print_config"])
    assert "n_expert" in capsys.readouterr().err


def _fit(dataset: Path, model_config: Path, root: Path, *extra: str):
    return run_training_cli(
        [
            "fit",
            "--config",
            str(REPO_ROOT / "configs/experiment/sim_mmoe.yaml"),
            "--model",
            str(model_config),
            "--data.path",
            str(dataset),
            "--trainer.default_root_dir",
            str(root),
            *QUIET,
            *extra,
        ]
    )


@pytest.mark.parametrize("dataset_fixture", ["sim_dataset", "census_dataset"])
def test_fast_dev_run_every_model_on_simulator_and_census(model_config, dataset_fixture, request, tmp_path):
    dataset = request.getfixturevalue(dataset_fixture)
    cli = _fit(dataset, model_config.path, tmp_path, "--trainer.fast_dev_run", "2", "--data.batch_size", "256")
    assert cli.trainer.state.finished
    model = cli.model.model
    shared = type(model.shared)
    assert f"{shared.__module__}.{shared.__name__}" == model_config.shared_class
    n_tasks = len(cli.datamodule.schema.tasks)
    batch = next(iter(cli.datamodule.val_dataloader()))
    with torch.no_grad():
        logits = cli.model.model(batch.sparse, batch.dense)
    assert logits.shape == (len(batch), n_tasks) and torch.isfinite(logits).all()


def test_run_folder_holds_config_provenance_checkpoints_and_predictions(sim_dataset, tmp_path):
    root = tmp_path / "run"
    cli = _fit(
        sim_dataset, REPO_ROOT / "configs/model/mmoe.yaml", root, "--trainer.max_epochs", "1", "--seed_everything", "11"
    )
    saved = yaml.safe_load((root / "config.yaml").read_text())
    assert saved["seed_everything"] == 11 and saved["data"]["path"] == str(sim_dataset)
    info = json.loads((root / "run_info.json").read_text())
    assert info["seed"] == 11 and info["data_fingerprint"] == cli.datamodule.fingerprint
    assert (root / "checkpoints" / "last.ckpt").exists()
    best = Path(cli.trainer.checkpoint_callback.best_model_path)
    assert best.parent == root / "checkpoints" and best.name.startswith("best-")

    out = tmp_path / "predictions.parquet"
    main(
        [
            "predict",
            "--config",
            str(root / "config.yaml"),
            "--ckpt_path",
            str(best),
            "--predictions",
            str(out),
            "--trainer.logger",
            "false",
            *QUIET,
        ]
    )
    assert yaml.safe_load((root / "config.yaml").read_text()) == saved  # predicting keeps the training config
    assert (root / "config.predict.yaml").exists()
    predictions = pl.read_parquet(out)
    test_rows = pl.read_parquet(sim_dataset / "test.parquet")["row_id"]
    assert predictions["row_id"].to_list() == test_rows.to_list()
    probability_columns = [f"p_{name}" for name in cli.datamodule.schema.task_names]
    assert predictions.columns == ["row_id", *probability_columns]
    values = predictions.select(probability_columns).to_numpy()
    assert ((values > 0) & (values < 1)).all()


def test_resume_from_last_checkpoint_continues_exactly(toy_dataset, tmp_path):
    deterministic = [
        "--trainer.deterministic",
        "true",
        "--seed_everything",
        "5",
        "--model.architecture.init_args.dropout",
        "0.2",
    ]
    config = REPO_ROOT / "configs/model/mmoe.yaml"
    straight = _fit(toy_dataset, config, tmp_path / "straight", "--trainer.max_epochs", "3", *deterministic)
    _fit(toy_dataset, config, tmp_path / "resumed", "--trainer.max_epochs", "1", *deterministic)
    resumed = _fit(
        toy_dataset,
        config,
        tmp_path / "resumed",
        "--trainer.max_epochs",
        "3",
        *deterministic,
        "--ckpt_path",
        str(tmp_path / "resumed" / "checkpoints" / "last.ckpt"),
    )
    for name, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name

    # metrics.csv keeps the epochs before the resume: the same validation rows as the uninterrupted run.
    def validation_rows(run: Path) -> list[tuple]:
        metrics = pl.read_csv(run / "metrics.csv").filter(pl.col("val/selection").is_not_null())
        return metrics.select("epoch", "val/selection").rows()

    assert validation_rows(tmp_path / "resumed") == validation_rows(tmp_path / "straight")
    assert [epoch for epoch, _ in validation_rows(tmp_path / "resumed")] == [0, 1, 2]
