"""`mtr build-dataset --events DIR --out DIR`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from mtr.data.build import BuildConfig, build_dataset_from_events
from mtr.data.feature_config import SIMULATOR_FEATURES, FeatureConfig
from mtr.data.split_rates import format_report
from mtr.objectives import OBJECTIVE_TABLES, Objective

DEFAULT_BUILD = BuildConfig()


def build_dataset(
    events: Path,
    out: Path,
    build: BuildConfig = DEFAULT_BUILD,
    objectives: Literal["messaging", "decision", "long_term"] | list[Objective] = "messaging",
    features: Path | None = None,
    overwrite: bool = False,
) -> None:
    """Build training tables and schema.json from raw event logs.

    Args:
        events: folder of raw event logs (as written by `mtr simulate`).
        out: output dataset folder (replaced only when the build succeeds).
        build: split fractions, partitions and feature settings (`--build.partitions 16`).
        objectives: the objective table, one label per objective by its label rule: a named table
            ("messaging": per-send conversion, engagement, retention, unsubscribe; "decision": the same with
            the decision's conversion, `mtr.objectives.DECISION_OBJECTIVES`; "long_term": the decision table
            and active days over the next 8 weeks, `LONG_TERM_OBJECTIVES`) or a list of objectives (name,
            kind, direction, exists_for_none, value_scaled, label_rule, loss).
        features: a feature config (YAML, `mtr.data.feature_config`) naming which columns of the log's users,
            messages and opportunities are features and which history counts to build; default: the
            simulator's set (`configs/features/simulator.yaml`).
        overwrite: replace `out` even when it is not an earlier build's (never the events folder).
    """
    table = OBJECTIVE_TABLES[objectives] if isinstance(objectives, str) else tuple(objectives)
    declared = FeatureConfig.load(features) if features is not None else SIMULATOR_FEATURES
    schema = build_dataset_from_events(events, out, build, table, overwrite, declared)
    print(f"dataset '{schema.name}' written to {out} (fingerprint {schema.metadata['fingerprint'][:12]})")
    rule, days = schema.metadata["split_rule"], schema.metadata["split_days"]
    print(
        "split days: "
        + ", ".join(f"{split} {span['first']}..{span['last']}" for split, span in days.items())
        + f"; embargo {rule['embargo_days']} d, longest label horizon {rule['horizon_days']} d "
        + f"({rule['longest_label']}); days in no split: {rule['left_out_days']}"
    )
    dropped = schema.metadata["dropped"]["engagements_of_earlier_sends"]
    if dropped:
        print(f"dropped {dropped} engagement(s) of sends made before the log starts (a mid-stream extract)")
    print(format_report(schema.metadata["rows"], schema.metadata["rates"]))
