"""The `mtr` command.

Training subcommands (fit, validate, test, predict) go through LightningCLI; every other subcommand is
a typed function turned into a command line by jsonargparse, so each accepts `--config FILE` and
dotted overrides of its dataclass arguments.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

TRAINING_SUBCOMMANDS = ("fit", "validate", "test", "predict")


def _commands() -> dict[str, Any]:
    """Subcommand name -> typed function (or a nested dict of them). Imports stay light: no torch here."""
    from mtr.abtest.commands import ab_analyze, ab_plan, ab_simulate
    from mtr.data.adapters.commands import prepare_commands
    from mtr.data.commands import build_dataset
    from mtr.experiments.commands import ope_open_bandit, ope_simulator
    from mtr.experiments.long_term import long_term
    from mtr.ope.commands import ope_evaluate
    from mtr.pareto.commands import pareto
    from mtr.scoring.requests import write_requests
    from mtr.serving.commands import export, score
    from mtr.sim.commands import simulate
    from mtr.tuning.commands import tune

    return {
        "simulate": simulate,
        "build-dataset": build_dataset,
        "data": {"prepare": prepare_commands()},
        "ab": {"analyze": ab_analyze, "plan": ab_plan, "simulate": ab_simulate},
        "ope": {"open-bandit": ope_open_bandit, "simulator": ope_simulator, "evaluate": ope_evaluate},
        "tune": tune,
        "long-term": long_term,
        "pareto": pareto,
        "candidates": write_requests,
        "export": export,
        "score": score,
    }


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `mtr` console script: bad input exits with status 2 and a one-line reason."""
    from mtr.errors import InputError, RunError

    try:
        _dispatch(list(sys.argv[1:] if argv is None else argv), from_python=argv is not None)
    except (InputError, RunError) as error:
        if argv is not None:  # called from Python: let the caller see the exception
            raise
        print(f"mtr: error: {error}", file=sys.stderr)
        raise SystemExit(2 if isinstance(error, InputError) else 1) from None


def _dispatch(argv: list[str], from_python: bool) -> Any:
    if argv and argv[0] in TRAINING_SUBCOMMANDS:
        from mtr.training.lightning_cli import run_training_cli

        return run_training_cli(argv if from_python else None)
    from jsonargparse import auto_cli

    commands: dict[str, Callable[..., Any] | dict[str, Any]] = _commands()
    # No abbreviations: `--user 50` must not be taken as --users, nor `--trainer.max_epoch` as another option.
    return auto_cli(commands, args=argv, as_positional=False, allow_abbrev=False)


if __name__ == "__main__":
    main()
