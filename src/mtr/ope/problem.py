"""The logged problem a Pareto study runs on: candidates, the model's probabilities, logged feedback, truth.

Three sources of candidates:
- "log": the log's own candidate table, as its logging system recorded it (every eligible action at each
  decision with the logging policy's probability; `mtr.data.candidates`), which `mtr build-dataset` keeps
  in the dataset folder. Any platform's log that records candidates takes this path;
- "simulator": every action the simulated logging world allowed (from the events folder's oracle); the same
  actions as the simulator's own candidate table, rebuilt;
- "arms": every value of the dataset's action column at every opportunity, for randomised experiments
  whose arms are the whole action set (Hillstrom: men's e-mail, women's e-mail, no e-mail). Without a
  candidate table and without randomised arms, only the logged actions have support: a policy over other
  actions cannot be evaluated.

Where the events folder is a simulation, its oracle gives the TRUE probabilities of every candidate, whatever
the source. The model scores every candidate once, here, in chunks (bounded memory, with a progress bar),
and no trial touches the model again.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from mtr.data.candidates import candidates_path, read_dataset_candidates
from mtr.data.eventlog import event_log_fingerprint, table_paths
from mtr.errors import InputError
from mtr.events import CANDIDATES_FILE, META_FILE
from mtr.io import atomic_write_bytes, mark_output_dir
from mtr.objectives import Objective
from mtr.ope.dataset_feedback import dataset_feedback, logged_rewards
from mtr.ope.logged_feedback import LoggedFeedback, binary_rewards
from mtr.ope.scorers import Scorer
from mtr.schema import NO_SEND, DatasetSchema
from mtr.scoring.candidates import CandidateTable, candidate_model_rows, score_candidates, simulator_candidates
from mtr.scoring.fusion import FusionInputs
from mtr.scoring.groups import CandidateGroups, channel_codes

if TYPE_CHECKING:
    from mtr.sim.oracle import Oracle


@dataclass
class LoggedProblem:
    """Everything a study evaluates policies on.

    Attributes:
        inputs: candidates, the model's [N, K] predictions and the objective table.
        feedback: logged rewards (the K objectives and send volume) with the model's predictions for DR.
        truth: [N, K + 1] true outcome probabilities and the send indicator of every candidate, or None.
        description: counts for the summary.
        logging: [N] the logging policy's probability of every candidate, where the candidates say (a log's
            candidate table, the simulator's), else None.
    """

    inputs: FusionInputs
    feedback: LoggedFeedback
    truth: np.ndarray | None
    description: dict[str, int | str]
    logging: np.ndarray | None = None


def split_rows(dataset: Path, split: str) -> tuple[pl.DataFrame, DatasetSchema]:
    """The rows of one split, or of several ("train,validation"), of a dataset folder and its schema."""
    schema = DatasetSchema.load(dataset)
    names = checked_splits(schema, dataset, split)
    return pl.concat([pl.read_parquet(schema.split_path(dataset, name)) for name in names]), schema


def checked_splits(schema: DatasetSchema, dataset: Path, split: str) -> list[str]:
    """The names in `split`, each a split of the dataset."""
    names = split_names(split)
    unknown = [name for name in names if name not in schema.splits]
    if unknown:
        raise InputError(f"split: dataset {dataset} has splits {list(schema.splits)}, not {unknown}")
    return names


def split_names(split: str) -> list[str]:
    """ "train,validation" -> ["train", "validation"]."""
    names = [name.strip() for name in split.split(",") if name.strip()]
    if not names or len(set(names)) != len(names):
        raise InputError(f"split: give one split or distinct comma-separated ones, got {split!r}")
    return names


# Candidates turned into model-input rows and scored at a time: bounds the memory of a study's scoring.
SCORING_CHUNK = 262_144


def scored_candidates(
    scorers: Sequence[Scorer],
    candidates: CandidateTable,
    rows: pl.DataFrame,
    table: str,
    chunk: int = SCORING_CHUNK,
) -> tuple[np.ndarray, DatasetSchema]:
    """[N, K] every candidate's predictions, made chunk by chunk of whole decisions with a progress bar.

    Args:
        scorers: one model, or the fold models of a cross-fit.
        candidates: the candidates of `rows`' decisions.
        rows: dataset rows, one per decision, with every feature column.
        table: names the rows in errors.
        chunk: about this many candidates become model-input rows at a time.
    """
    from tqdm.auto import tqdm

    check_judges(scorers, rows, table)
    groups = candidates.groups
    ends = np.concatenate([groups.starts[1:], [groups.n_candidates]])
    predicted, schema = None, None
    with tqdm(total=groups.n_candidates, desc="scoring candidates", unit="cand", unit_scale=True) as bar:
        first = 0
        while first < groups.n_groups:
            # Whole decisions per chunk: the last one that starts within `chunk` candidates of the first.
            last = max(first + 1, int(np.searchsorted(groups.starts, groups.starts[first] + chunk, side="left")))
            start, stop = int(groups.starts[first]), int(ends[last - 1])
            part = candidates.frame.slice(start, stop - start)
            scores, schema = scored_by(scorers, candidate_model_rows(part, rows), groups.channel[start:stop], table)
            if predicted is None:
                predicted = np.zeros((groups.n_candidates, scores.shape[1]), dtype=scores.dtype)
            predicted[start:stop] = scores
            bar.update(stop - start)
            first = last
    return predicted, schema


def check_judges(scorers: Sequence[Scorer], rows: pl.DataFrame, table: str) -> None:
    """Every scorer may judge some of the rows (a fold model with none was given for another dataset)."""
    for scorer in scorers:
        if not scorer.rows(rows, table).any():
            raise InputError(f"{table}: no rows of the users that run {scorer.run} may be judged on")


def scored_by(
    scorers: Sequence[Scorer], rows: pl.DataFrame, channel: np.ndarray, table: str
) -> tuple[np.ndarray, DatasetSchema]:
    """[rows, K] each row's predictions by the one scorer that may judge it (`mtr.ope.scorers`), and the
    models' schema.

    Args:
        scorers: one model, or the fold models of a cross-fit (together they cover every user once).
        rows: model-input rows, one per candidate.
        channel: [rows] each candidate's channel code.
        table: names the rows in errors.
    """
    predicted, schema = None, None
    for scorer in scorers:
        model, schema = scorer.model
        mine = scorer.rows(rows, table)
        if not mine.any():
            continue
        scores = score_candidates(model, schema, rows.filter(pl.Series(mine)), channel[mine])
        if predicted is None:
            predicted = np.zeros((rows.height, scores.shape[1]), dtype=scores.dtype)
        predicted[mine] = scores
    if predicted is None:
        raise InputError(f"{table}: none of the scoring models may judge these rows")
    return predicted, schema


def simulator_scored(
    scorers: Sequence[Scorer], rows: pl.DataFrame, events: Path | str, table: str = "evidence"
) -> tuple[CandidateTable, LoggedProblem]:
    """The simulator's candidates at the opportunities of `rows`, scored by the model(s) and by the oracle.

    Returns:
        The candidates, and the problem (`scored_problem`).
    """
    from mtr.sim.oracle import Oracle

    oracle = Oracle.load(events)
    candidates = simulator_candidates(events, rows, oracle)
    return candidates, scored_problem(scorers, rows, candidates, oracle, table)


def scored_problem(
    scorers: Sequence[Scorer], rows: pl.DataFrame, candidates: CandidateTable, oracle: Oracle | None, table: str
) -> LoggedProblem:
    """The problem over `candidates` of the decisions in `rows`: the model's predictions, the logged feedback
    and, where an oracle is given, the truth (each objective's `p_{label_rule}` from the oracle, NaN for
    objectives the oracle does not know, then the send indicator)."""
    groups = candidates.groups
    predicted, schema = scored_candidates(scorers, candidates, rows, table)
    truth = None
    if oracle is not None:
        true = oracle.probabilities(
            candidates.frame.select("row_id", "message_id", "channel", "hour").rename({"row_id": "opportunity_id"})
        )
        # The oracle knows outcomes by label rule; an objective whose rule the world does not draw itself (a value
        # derived from its conversions) has no truth: NaN.
        unknown = np.full(groups.n_candidates, np.nan)
        columns = [
            true[f"p_{o.label_rule}"].fill_null(0.0).to_numpy() if f"p_{o.label_rule}" in true.columns else unknown
            for o in schema.objective_table
        ]
        truth = np.column_stack([*columns, groups.is_send()]).astype(np.float64)
    feedback = dataset_feedback(candidates, rows, schema, predicted)
    inputs = FusionInputs(groups, predicted, objectives=schema.objective_table)
    propensity = candidates.frame["propensity"]
    logging = None if propensity.null_count() else propensity.to_numpy().astype(np.float64)
    return LoggedProblem(inputs, feedback, truth, {"opportunities": groups.n_groups}, logging)


def simulator_problem(scorers: Sequence[Scorer], dataset: Path, events: Path, split: str) -> LoggedProblem:
    """The simulator's candidates at the split's opportunities, scored by the model(s) and by the oracle."""
    rows, _ = split_rows(dataset, split)
    _, problem = simulator_scored(scorers, rows, events, table=f"split {split}")
    described = {"candidates": "simulator", "split": split, "scoring_models": len(scorers)}
    problem.description = {**described, **problem.description}
    return problem


def log_problem(scorers: Sequence[Scorer], dataset: Path, split: str, events: Path | None = None) -> LoggedProblem:
    """The log's own candidates (the dataset's candidates file) at the split's decisions, scored by the model(s);
    with the truth of the simulator's oracle when `events` is a simulation."""
    from mtr.sim.oracle import Oracle, has_truth

    rows, _ = split_rows(dataset, split)
    candidates = CandidateTable.from_frame(read_dataset_candidates(dataset, rows["row_id"]))
    oracle = Oracle.load(events) if events is not None and has_truth(events) else None
    problem = scored_problem(scorers, rows, candidates, oracle, f"split {split}")
    described = {"candidates": "log", "split": split, "scoring_models": len(scorers)}
    problem.description = {**described, **problem.description}
    return problem


def arm_problem(scorers: Sequence[Scorer], dataset: Path, split: str) -> LoggedProblem:
    """Every arm (value of the action column) at every opportunity of the split, scored by the model(s)."""
    rows, schema = split_rows(dataset, split)
    action, channel = schema.action_column, schema.channel_column or "channel"
    if action is None or schema.propensity_column is None:
        raise InputError(f"dataset {dataset}: 'arms' candidates need an action and a propensity column in the schema")
    arms = rows.select(action, channel).unique().sort(pl.col(channel) != NO_SEND, action)
    if arms[action].n_unique() != arms.height:
        raise InputError(f"dataset {dataset}: column '{action}' maps to several channels")
    if arms[channel].to_list().count(NO_SEND) != 1:
        raise InputError(f"dataset {dataset}: 'arms' candidates need exactly one '{NO_SEND}' arm in '{channel}'")
    check_arms_possible(rows, arms, action, channel, dataset)
    check_judges(scorers, rows, f"split {split}")
    g, a, k = rows.height, arms.height, len(schema.objective_table)
    codes = channel_codes(arms[channel])
    groups = CandidateGroups.build(np.full(g, a), np.tile(codes, g), np.arange(g), np.zeros(g))
    predictions = np.zeros((g, a, k), dtype=np.float32)
    for j, (arm, arm_channel) in enumerate(arms.iter_rows()):
        arm_rows = rows.with_columns(pl.lit(arm).alias(action), pl.lit(arm_channel).alias(channel))
        arm_channels = np.full(g, codes[j], dtype=np.int64)
        predictions[:, j] = scored_by(scorers, arm_rows, arm_channels, f"split {split}")[0]
    logged_arm = rows.select(pl.col(action).replace_strict(arms[action], range(a), return_dtype=pl.Int64))
    logged_index = groups.starts + logged_arm.to_series().to_numpy()
    rewards, mask = logged_rewards(rows, schema)
    predicted = predictions.reshape(g * a, k)
    propensity = rows[schema.propensity_column].to_numpy().astype(np.float64)
    binary = binary_rewards(schema.objective_table)
    feedback = LoggedFeedback(
        groups, logged_index, propensity, rewards, mask, predicted, schema.objective_names, binary
    ).with_send_volume()
    arms_named = "arms: " + ", ".join(arms[action].to_list())
    described = {"candidates": arms_named, "split": split, "scoring_models": len(scorers), "opportunities": g}
    inputs = FusionInputs(groups, predicted, objectives=schema.objective_table)
    return LoggedProblem(inputs, feedback, None, described)


def check_arms_possible(rows: pl.DataFrame, arms: pl.DataFrame, action: str, channel: str, dataset: Path) -> None:
    """Arms mode evaluates every arm at every row: refuse an arm on a channel the row's user had left
    (`subscribed_{channel}` false), which no policy could have sent."""
    for arm, arm_channel in arms.iter_rows():
        column = f"subscribed_{arm_channel}"
        if column in rows.columns:
            impossible = rows.filter(~pl.col(column).fill_null(True))
            if impossible.height:
                raise InputError(
                    f"dataset {dataset}: arm '{arm}' is on channel '{arm_channel}', which {impossible.height} row(s) "
                    f"had unsubscribed from (column '{column}'); arms must be possible at every row. Give the log a "
                    "candidate table of what was possible at each decision"
                )


def cached_problem(
    cache: Path, key: dict, build: Callable[[], LoggedProblem], before_build: Callable[[], None] | None = None
) -> LoggedProblem:
    """The problem saved in `cache` (an .npz) when it was built from the same `key`, else `build()` and save it
    (after `before_build`: the checks a cached problem has already passed).

    Scoring every candidate with the model is the slow part of a study (minutes on a busy CPU); re-runs,
    resumes and extra worker processes on the same inputs load it instead. The key names the inputs and
    their files' sizes and modification times.
    """
    key_json = json.dumps(key, sort_keys=True, default=str)
    if cache.exists():
        with np.load(cache, allow_pickle=False) as saved:
            if str(saved["key"]) == key_json and "objectives" in saved.files:  # older caches lack the table
                return _from_arrays(saved)
    if before_build is not None:
        before_build()
    problem = build()
    fb, groups = problem.feedback, problem.inputs.groups
    arrays = {
        "key": np.array(key_json),
        "description": np.array(json.dumps(problem.description)),
        "sizes": groups.sizes, "channel": groups.channel, "user": groups.user, "day": groups.day,
        "probabilities": problem.inputs.probabilities, "logged_index": fb.logged_index,
        "propensity": fb.propensity, "rewards": fb.rewards, "mask": fb.mask,
        "predicted": fb.predicted, "reward_names": np.array(fb.reward_names),
        "objectives": np.array(json.dumps([dataclasses.asdict(o) for o in problem.inputs.objectives])),
    }  # fmt: skip
    if problem.truth is not None:
        arrays["truth"] = problem.truth
    if problem.logging is not None:
        arrays["logging"] = problem.logging
    tmp = cache.with_name(f".{cache.name}.tmp.npz")
    np.savez(tmp, **arrays)
    atomic_write_bytes(cache, tmp.read_bytes())
    tmp.unlink()
    return problem


def _from_arrays(saved: np.lib.npyio.NpzFile) -> LoggedProblem:
    groups = CandidateGroups.build(saved["sizes"], saved["channel"], saved["user"], saved["day"])
    names = tuple(str(n) for n in saved["reward_names"])
    objectives = tuple(Objective(**o) for o in json.loads(str(saved["objectives"])))
    binary = (*binary_rewards(objectives), True)  # the objectives, then send volume
    logged = (saved["logged_index"], saved["propensity"], saved["rewards"], saved["mask"], saved["predicted"])
    feedback = LoggedFeedback(groups, *logged, names, binary)
    truth = saved["truth"] if "truth" in saved.files else None
    inputs = FusionInputs(groups, saved["probabilities"], objectives=objectives)
    logging = saved["logging"] if "logging" in saved.files else None
    return LoggedProblem(inputs, feedback, truth, json.loads(str(saved["description"])), logging)


def load_problem(
    out: Path, inputs: dict[str, Any], events: Path | None, candidates: str = "auto", command: str = "pareto"
) -> LoggedProblem:
    """The scored problem, from OUT/problem.npz when it was built from the same files (see `cached_problem`).

    Args:
        out: the study's output folder.
        inputs: run (a folder or the fold models' list), checkpoint, dataset and split, as `pareto` names them.
        events: the event log the dataset was built from (a simulation gives the truth), or None.
        candidates: "auto", "log", "simulator" or "arms" (see `mtr.pareto.commands.pareto`).
        command: the command whose output folder `out` is (marked once the inputs are checked).
    """
    from mtr.ope.scorers import check_trained_on, load_scorers
    from mtr.sim.oracle import has_truth

    runs = inputs["run"] if isinstance(inputs["run"], list) else [inputs["run"]]
    dataset, split = Path(inputs["dataset"]), inputs["split"]
    schema = DatasetSchema.load(dataset)
    names = checked_splits(schema, dataset, split)
    scorers = load_scorers([Path(r) for r in runs], inputs["checkpoint"], names)
    simulated = events is not None and has_truth(events)
    source = candidate_source(candidates, candidates_path(dataset).exists(), simulated)
    builders = {
        "log": lambda: log_problem(scorers, dataset, split, events),
        "simulator": lambda: simulator_problem(scorers, dataset, events, split),
        "arms": lambda: arm_problem(scorers, dataset, split),
    }
    key = {
        **inputs,
        "events": str(events),
        "candidates": source,
        "models": [file_stamp(s.checkpoint) if s.checkpoint.exists() else None for s in scorers],
        # The schema only, not the rows: their files' stamps.
        "rows": [file_stamp(schema.split_path(dataset, name)) for name in names],
        "event_files": {} if events is None else event_log_stamps(Path(events)),
    }
    if source == "log":
        key["candidate_rows"] = file_stamp(candidates_path(dataset))

    def check_then_mark() -> None:
        # Whole-file fingerprints, so only when the problem is scored anew: a cached one was built from the same
        # files, by the key's stamps.
        check_trained_on(scorers, dataset, schema)
        if events is not None:
            check_events_of(dataset, schema, Path(events))
        mark_output_dir(out, command)  # the inputs checked: only now the folder and its files

    return cached_problem(out / "problem.npz", key, builders[source], before_build=check_then_mark)


def event_log_stamps(events: Path) -> dict[str, dict[str, float] | None]:
    """Size and modification time of an event log's files (None for one that is missing)."""
    files = {**table_paths(events), "meta": events / META_FILE, "candidates": events / CANDIDATES_FILE}
    return {name: file_stamp(path) if path.exists() else None for name, path in files.items()}


def candidate_source(choice: str, log_has_candidates: bool, simulated: bool) -> str:
    """The candidates a study uses ("auto": the log's own, else the simulator's, else arms), checked available."""
    if choice == "auto":
        return "log" if log_has_candidates else "simulator" if simulated else "arms"
    if choice == "log" and not log_has_candidates:
        raise InputError(
            "candidates: 'log' needs the dataset's candidates.parquet, which `mtr build-dataset` writes when the "
            "event log has a candidates table"
        )
    if choice == "simulator" and not simulated:
        raise InputError(
            "candidates: 'simulator' needs --events, the folder `mtr simulate` wrote and the dataset was built from"
        )
    if choice not in ("log", "simulator", "arms"):
        raise InputError(f"candidates: expected auto, log, simulator or arms, got {choice!r}")
    return choice


def check_events_of(dataset: Path, schema: DatasetSchema, events: Path) -> None:
    """`events` is the simulation `dataset` was built from (the event-log fingerprint its schema records)."""
    if not (events / "meta.json").is_file():
        raise InputError(f"events: {events} is not an event-log folder (no meta.json)")
    built_from = schema.metadata.get("fingerprint")
    if built_from is not None and built_from != event_log_fingerprint(events):
        raise InputError(
            f"events: dataset {dataset} was built from another event log (fingerprint {built_from[:12]}), not from "
            f"{events}; give the simulation it was built from"
        )


def file_stamp(path: Path) -> dict[str, float]:
    """Size and modification time of a file, for cache keys."""
    stat = Path(path).stat()
    return {"size": stat.st_size, "mtime": stat.st_mtime}
