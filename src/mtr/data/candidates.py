"""A log's candidate table: every action that was possible at each decision, checked against the log.

A platform's logging system records, at each decision, the eligible actions and the logging policy's
probability of each; with them a study can evaluate and tune any policy over those actions, on any log
(`mtr pareto`, `mtr ope`). `mtr build-dataset` checks the optional `candidates` table of the event-log contract
(`mtr.events.CANDIDATE_COLUMNS`) and writes the candidates of the dataset's split rows into the dataset folder,
with the message attributes the features declare, so studies need no events folder.

A candidate must be possible at its decision: on a channel its message allows and the user is still subscribed
to, at an hour not yet past, with a message already launched (`launched_ts`, where the messages table has it).
The taken action must be among its decision's candidates, with the same propensity where both are known.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from mtr.data.asof import KEY
from mtr.data.eventlog import EVERY_ROW, EventLog, raise_first
from mtr.data.features import unsubscribed_before
from mtr.errors import InputError
from mtr.events import CANDIDATE_COLUMNS, CANDIDATES_FILE, CANDIDATES_TABLE
from mtr.schema import CHANNELS, NO_SEND
from mtr.tables import scan_table

ACTION_KEY = ("message_id", "channel", "hour")
# Propensities of one decision may exceed 1 by rounding only.
PROPENSITY_TOLERANCE = 1e-6


def candidates_path(folder: Path | str) -> Path:
    return Path(folder) / CANDIDATES_FILE


def open_candidates(log: EventLog) -> pl.LazyFrame | None:
    """The log's checked candidate table with each candidate's `user_id` and `ts`, or None when it has none.

    Raises:
        InputError: naming table 'candidates' and the column: a missing or mistyped column, an unknown channel,
            a send without message or hour, a "none" with one, a propensity outside [0, 1] or summing over 1 in a
            decision, not exactly one "none" per decision, a repeated action, a decision missing from
            'opportunities', a taken action missing from its candidates (or with another propensity), or a
            candidate that was not possible (channel not allowed by its message or unsubscribed before the
            decision, hour already past, message not yet launched).
    """
    path = candidates_path(log.folder)
    if not path.exists():
        return None
    table = CANDIDATES_TABLE
    raw = scan_table(path, table, CANDIDATE_COLUMNS).select(*CANDIDATE_COLUMNS)
    send = pl.col("channel") != NO_SEND
    raise_first(
        table,
        raw,
        [
            (KEY, pl.col(KEY).is_null(), "are missing"),
            (
                "channel",
                pl.col("channel").is_null() | ~pl.col("channel").is_in([*CHANNELS, NO_SEND]),
                f"have an unknown channel (allowed: {', '.join([*CHANNELS, NO_SEND])})",
            ),
            ("message_id", send & pl.col("message_id").is_null(), "are sends without a message_id"),
            ("hour", send & ~pl.col("hour").is_between(0, 23).fill_null(False), "are sends without an hour in 0..23"),
            (
                "message_id",
                ~send & (pl.col("message_id").is_not_null() | pl.col("hour").is_not_null()),
                "are 'none' candidates with a message_id or an hour",
            ),
            (
                "propensity",
                pl.col("propensity").is_not_null() & ~pl.col("propensity").is_between(0.0, 1.0),
                "have a propensity outside [0, 1]",
            ),
        ],
    )
    opportunities = log.tables["opportunities"]
    candidates = raw.join(opportunities.select(KEY, "user_id", "ts"), on=KEY, how="left")
    raise_first(table, candidates, [(KEY, pl.col("ts").is_null(), "name a decision missing from 'opportunities'")])
    _check_decisions(raw, table)
    _check_taken(opportunities, raw, table)
    _check_possible(log, candidates, table)
    return candidates


def _check_decisions(raw: pl.LazyFrame, table: str) -> None:
    """Per decision: one "none" candidate, no repeated action, propensities summing to at most 1."""
    per_decision = raw.group_by(KEY).agg(
        (pl.col("channel") == NO_SEND).sum().alias("nones"),
        pl.col("propensity").sum().alias("total"),
    )
    raise_first(
        table,
        per_decision,
        [
            (KEY, pl.col("nones") != 1, "are decisions without exactly one 'none' candidate (column 'channel')"),
            (KEY, pl.col("total") > 1 + PROPENSITY_TOLERANCE, "are decisions whose column 'propensity' sums over 1"),
        ],
    )
    repeats = raw.group_by(KEY, *ACTION_KEY).len().filter(pl.col("len") > 1)
    raise_first(table, repeats, [(KEY, EVERY_ROW, "are decisions that list one action twice")])


def _check_taken(opportunities: pl.LazyFrame, raw: pl.LazyFrame, table: str) -> None:
    """The taken action of every decision that has candidates is among them, with the logged propensity."""
    listed = raw.select(KEY).unique()
    taken = opportunities.join(listed, on=KEY, how="semi").select(KEY, *ACTION_KEY, "propensity")
    found = taken.join(
        raw.select(KEY, *ACTION_KEY, pl.col("propensity").alias("candidate_propensity"), pl.lit(True).alias("found")),
        on=[KEY, *ACTION_KEY],
        how="left",
        nulls_equal=True,
    )
    differs = (pl.col("candidate_propensity") - pl.col("propensity")).abs() > PROPENSITY_TOLERANCE
    raise_first(
        table,
        found,
        [
            (KEY, pl.col("found").is_null(), "are decisions whose taken action is not among their candidates"),
            ("propensity", pl.col("found").is_not_null() & differs, "differ from the taken action's logged propensity"),
        ],
    )
    # A decision of the log without candidates cannot be evaluated; a partial table is an export that went wrong.
    missing = opportunities.join(listed, on=KEY, how="anti")
    raise_first(
        table, missing, [(KEY, EVERY_ROW, "are decisions of table 'opportunities' without candidates (first shown)")]
    )


def _check_possible(log: EventLog, candidates: pl.LazyFrame, table: str) -> None:
    """Every send candidate was possible at its decision (`send_rules`)."""
    sends = with_send_context(log, candidates.filter(pl.col("channel") != NO_SEND))
    rules = send_rules(sends.collect_schema().names())
    checks = [
        ("message_id", pl.col("channels").is_null(), "name a message missing from table 'messages'"),
        ("channel", ~rules["allowed"], "are on a channel their message does not allow"),
        ("channel", ~rules["subscribed"], "are on a channel the user unsubscribed from before the decision"),
        ("hour", ~rules["ahead"], "are at an hour already past at the decision"),
    ]
    if "launched" in rules:
        checks.append(("message_id", ~rules["launched"], "offer a message before its launched_ts"))
    raise_first(table, sends, checks)


def with_send_context(log: EventLog, sends: pl.LazyFrame) -> pl.LazyFrame:
    """Send actions `[opportunity_id, user_id, ts, message_id, channel, hour, ...]` with what their possibility
    depends on: the message's channels (and launched_ts) and the user's unsubscribes per channel before ts."""
    messages = log.tables["messages"]
    launched = ["launched_ts"] if "launched_ts" in messages.collect_schema().names() else []
    decisions = sends.select(KEY, "user_id", "ts").unique(KEY)
    return sends.join(messages.select("message_id", "channels", *launched), on="message_id", how="left").join(
        unsubscribed_before(decisions, log.tables["unsubscribes"]), on=KEY, how="left"
    )


def send_rules(columns: list[str]) -> dict[str, pl.Expr]:
    """The contract's rules of a possible send, over `with_send_context` rows: each is true where it holds.

    - allowed: the message allows the channel;
    - subscribed: the user had not unsubscribed from the channel before the decision;
    - ahead: the send's hour is not past on the decision's day (sends happen on the decision's day);
    - launched (where messages have launched_ts): the message had launched by the decision.
    """
    subscribed = pl.lit(True)
    for channel in CHANNELS:
        subscribed = subscribed & ~((pl.col("channel") == channel) & (pl.col(f"unsubscribed_{channel}") > 0))
    rules = {
        "allowed": pl.col("channels").list.contains(pl.col("channel")).fill_null(False),
        "subscribed": subscribed,
        "ahead": pl.col("hour").cast(pl.Int64) >= pl.col("ts").dt.hour().cast(pl.Int64),
    }
    if "launched_ts" in columns:
        rules["launched"] = pl.col("launched_ts").is_null() | (pl.col("launched_ts") <= pl.col("ts"))
    return rules


def dataset_candidates(
    candidates: pl.LazyFrame, rows: pl.LazyFrame, messages: pl.LazyFrame, message_columns: tuple[str, ...]
) -> pl.LazyFrame:
    """The candidates of a dataset's rows, with the message attributes a candidate brings (readers put them in
    group order: `mtr.scoring.candidates.CandidateTable`).

    Args:
        candidates: the checked candidate table (`open_candidates`).
        rows: the dataset's rows: row_id (= opportunity_id).
        messages: the log's messages table.
        message_columns: the message attributes that are features.

    Returns:
        row_id, user_id, ts, message_id, channel, hour, propensity, *message_columns.
    """
    return (
        candidates.rename({KEY: "row_id"})
        .join(rows.select("row_id"), on="row_id", how="semi")
        .join(messages.select("message_id", *message_columns), on="message_id", how="left")
        .select("row_id", "user_id", "ts", *ACTION_KEY, "propensity", *message_columns)
    )


def read_dataset_candidates(folder: Path | str, row_ids: pl.Series) -> pl.DataFrame:
    """The candidates of the given rows from a dataset folder's candidates file.

    Raises:
        InputError: the dataset has no candidates file (its log had no candidate table), or rows lack candidates.
    """
    path = candidates_path(folder)
    if not path.exists():
        raise InputError(
            f"dataset {folder} has no {CANDIDATES_FILE}: its event log had no candidate table. Give the log a "
            "'candidates' table (see the README's data contract), or use arms (randomised experiments) or the "
            "simulator's candidates (--events)"
        )
    wanted = pl.LazyFrame({"row_id": row_ids.cast(pl.Int64)})
    frame = pl.scan_parquet(path).join(wanted, on="row_id", how="semi").collect()
    covered = frame["row_id"].n_unique()
    if covered != row_ids.n_unique():
        raise InputError(
            f"table 'candidates' of dataset {folder}: {row_ids.n_unique() - covered} row(s) lack candidates"
        )
    return frame


def possible_actions(log: EventLog, decisions: pl.LazyFrame, hours: tuple[int, ...]) -> pl.DataFrame:
    """Every action possible at new decisions, by the contract's rules, with an unknown (null) propensity.

    A send is possible when its message allows the channel, has launched (`launched_ts`, where the messages
    table has it), the user has not unsubscribed from the channel before the decision, and its hour (one of
    `hours`, the log's send hours) is not past on the decision's day. Each decision also gets its "none".

    Args:
        log: the event log (its messages and unsubscribes).
        decisions: `[opportunity_id, user_id, ts]`, the decisions to list actions for.
        hours: the hours of day a send may take.

    Returns:
        `[opportunity_id, user_id, ts, message_id, channel, hour, propensity]`, the "none" candidate first.
    """
    offers = log.tables["messages"].select("message_id", pl.col("channels").alias("channel")).explode("channel")
    grid = pl.LazyFrame({"hour": pl.Series(sorted(set(hours)), dtype=pl.Int32)})
    sends = with_send_context(log, decisions.join(offers, how="cross").join(grid, how="cross"))
    possible = pl.all_horizontal(send_rules(sends.collect_schema().names()).values())
    columns = [KEY, "user_id", "ts", "message_id", "channel", "hour"]
    nones = decisions.select(
        KEY, "user_id", "ts", pl.lit(None, pl.Int64).alias("message_id"), pl.lit(NO_SEND).alias("channel"),
        pl.lit(None, pl.Int32).alias("hour"),
    )  # fmt: skip
    frame = pl.concat([nones, sends.filter(possible).select(columns)])
    return (
        frame.with_columns(pl.lit(None, pl.Float64).alias("propensity"))
        .sort(KEY, pl.col("channel") != NO_SEND)
        .collect()
    )
