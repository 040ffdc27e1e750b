"""`mtr score`: raw candidate rows -> every task's probability and the ranking score, from an artifact.

A candidates table has one row per candidate: every schema feature column as raw values (the
opportunity's context and the candidate's action columns), the opportunity key (the schema's row id
column, shared by the candidates of one opportunity) and the channel column, with exactly one "none"
candidate per opportunity, its baseline in the fusion. The rows go through `encode_features`, the
preprocessing the DataModule runs in training, then through the exported program in batches that keep
each opportunity's candidates together. The operating point's policy (threshold, and temperature for a
softmax policy) then gives each candidate its action probability with `mtr.scoring.policy.decide`, the
function the Pareto study and off-policy evaluation use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import torch

from mtr.data.preprocess import encode_features
from mtr.errors import InputError
from mtr.io import write_parquet
from mtr.schema import DatasetSchema
from mtr.scoring.groups import NONE_CODE, channel_codes
from mtr.scoring.policy import opportunity_probabilities
from mtr.serving.artifact import PROGRAM_FILE, VerifiedArtifact, verify_artifact
from mtr.tables import FLOAT, INTEGER, NUMERIC, STRING, check_columns

RUNTIMES = ("export", "aoti")
TABLE = "candidates"
ACTION_PROBABILITY = "action_probability"


def check_raw_dtypes(columns: pl.Schema, schema: DatasetSchema, table: str = TABLE) -> None:
    """Raise `InputError` naming the column when a raw feature's dtype differs from the training data's.

    Sparse values are matched to the vocabulary as text, so a column must keep its training kind: an
    Int64 id sent as Float64 would read "3.0", a Boolean sent as Int8 "1", and both would silently become
    the unknown id. Integer widths and string encodings may differ; they print the same.
    """
    kinds = {"String": STRING, "Categorical": STRING, "Enum": STRING, "Boolean": pl.Boolean, "Float": FLOAT}
    required = {
        f.name: next((k for p, k in kinds.items() if f.dtype.startswith(p)), INTEGER) for f in schema.sparse_features
    }
    check_columns(table, columns, required | {f.name: NUMERIC + (pl.Boolean,) for f in schema.dense_features})


@dataclass(frozen=True)
class ProgramInputs:
    """The program's inputs for N candidates, grouped by opportunity.

    Attributes:
        tensors: (sparse_ids [N, F], dense [N, D], channel [N], baseline [N], value [N]); baseline is a
            position in the whole table.
        order: [N] row of the input table of each grouped candidate.
        group_starts: [G + 1] position of each opportunity's first candidate, then N.
    """

    tensors: tuple[torch.Tensor, ...]
    order: np.ndarray
    group_starts: np.ndarray

    def batches(self, batch_size: int) -> list[tuple[int, int]]:
        """(start, stop) slices of about `batch_size` candidates that never split an opportunity."""
        cuts = np.unique(
            self.group_starts[np.searchsorted(self.group_starts, np.arange(0, self.order.size, batch_size))]
        )
        return list(zip(cuts.tolist(), [*cuts[1:].tolist(), int(self.order.size)], strict=True))

    def slice(self, start: int, stop: int) -> tuple[torch.Tensor, ...]:
        """The inputs of candidates start:stop, with baselines relative to `start`."""
        sparse_ids, dense, channel, baseline, value = (t[start:stop] for t in self.tensors)
        return sparse_ids, dense, channel, baseline - start, value


class Scorer:
    """Scores candidate tables with a verified artifact.

    Args:
        artifact: the verified artifact folder.
        runtime: "export" (the `torch.export` program) or "aoti" (the AOTInductor package).
    """

    def __init__(self, artifact: VerifiedArtifact, runtime: str = "export") -> None:
        if runtime not in RUNTIMES:
            raise InputError(f"runtime must be one of {list(RUNTIMES)}, got {runtime!r}")
        self.artifact = artifact
        self.schema = artifact.schema
        self.value_column: str | None = artifact.manifest.get("value_column")
        self.program = self._load_program(runtime)

    @classmethod
    def load(cls, folder: Path | str, runtime: str = "export") -> Scorer:
        """Verify the artifact (manifest, checksums, no pickles), then load its program."""
        return cls(verify_artifact(folder), runtime)

    def _load_program(self, runtime: str) -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
        if runtime == "aoti":
            path = self.artifact.aoti_path
            if path is None:
                reason = self.artifact.manifest["aoti"].get("reason", "not compiled")
                raise InputError(f"artifact {self.artifact.folder} has no AOTInductor package: {reason}")
            return torch._inductor.aoti_load_package(str(path))
        path = self.artifact.folder / PROGRAM_FILE
        try:
            return torch.export.load(path).module()
        except Exception as error:  # noqa: BLE001 (torch raises many kinds on a damaged archive; name the file)
            raise InputError(f"artifact {path} cannot be loaded: {type(error).__name__}: {error}") from None

    def inputs(self, frame: pl.DataFrame, table: str = TABLE) -> ProgramInputs:
        """Check and encode raw candidate rows, grouped by opportunity (stable within an opportunity)."""
        row_id, channel_column = self.schema.row_id_column, self.schema.channel_column or "channel"
        check_columns(table, frame.schema, {row_id: INTEGER, channel_column: STRING})
        check_raw_dtypes(frame.schema, self.schema, table)
        if self.value_column:
            check_columns(table, frame.schema, {self.value_column: NUMERIC})
        if frame.height == 0:
            raise InputError(f"table '{table}' is empty")
        grouped = frame.with_row_index("_row").sort(row_id, maintain_order=True)
        keys = grouped[row_id].to_numpy()
        starts = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))
        channel = channel_codes(grouped[channel_column]).astype(np.int64)
        is_none = channel == NONE_CODE
        nones = np.add.reduceat(is_none.astype(np.int64), starts)
        if np.any(nones != 1):
            bad = keys[starts[nones != 1]][:3].tolist()
            raise InputError(
                f"table '{table}': every opportunity ('{row_id}') needs exactly one 'none' candidate, "
                f"the fusion's baseline; {row_id} {bad} do not"
            )
        baseline = np.repeat(np.flatnonzero(is_none), np.diff(np.append(starts, keys.size)))
        value = (
            grouped[self.value_column].cast(pl.Float32).to_numpy()
            if self.value_column
            else np.ones(keys.size, np.float32)
        )
        if not np.all(np.isfinite(value)):
            raise InputError(f"table '{table}' column '{self.value_column}' has missing or non-finite values")
        features = encode_features(grouped, self.schema, table=table)
        tensors = tuple(
            torch.from_numpy(np.ascontiguousarray(a))
            for a in (features.sparse_ids, features.dense, channel, baseline, value)
        )
        return ProgramInputs(tensors, grouped["_row"].to_numpy(), np.append(starts, keys.size))

    @torch.inference_mode()
    def score(self, frame: pl.DataFrame, batch_size: int = 2048, table: str = TABLE) -> pl.DataFrame:
        """Predictions `p_{task}` of every task, the `score` and the `action_probability` of each candidate under
        the operating point's policy, in input row order."""
        inputs = self.inputs(frame, table)
        predictions = np.empty((frame.height, len(self.schema.tasks)), np.float32)
        scores = np.empty(frame.height, np.float32)  # grouped order
        for start, stop in inputs.batches(batch_size):
            batch_predictions, batch_scores = self.program(*inputs.slice(start, stop))
            predictions[inputs.order[start:stop]] = batch_predictions.numpy()
            scores[start:stop] = batch_scores.numpy()
        policy = self.artifact.operating_point.policy
        channel = inputs.tensors[2].numpy()
        in_order = np.empty((2, frame.height), np.float32)
        in_order[:, inputs.order] = scores, opportunity_probabilities(inputs.group_starts, channel, scores, policy)
        columns = {f"p_{name}": predictions[:, i] for i, name in enumerate(self.schema.task_names)}
        return pl.DataFrame(columns | {"score": in_order[0], ACTION_PROBABILITY: in_order[1]})


def score_file(
    artifact: Path | str,
    candidates: Path | str,
    out: Path | str,
    id_columns: tuple[str, ...] = (),
    runtime: str = "export",
    batch_size: int = 2048,
) -> pl.DataFrame:
    """Score a candidates Parquet file; write the id columns, `p_{task}`, `score` and `action_probability` to `out`
    (atomically)."""
    if batch_size < 1:
        raise InputError(f"batch_size: must be at least 1 candidate per program call, got {batch_size}")
    path = Path(candidates)
    if not path.is_file():
        raise InputError(f"table '{TABLE}' not found: {path}")
    try:
        frame = pl.read_parquet(path)
    except (pl.exceptions.ComputeError, OSError) as error:
        raise InputError(f"table '{TABLE}': {path} is not a readable Parquet file ({type(error).__name__})") from None
    scorer = Scorer.load(artifact, runtime)
    ids = (scorer.schema.row_id_column, *(c for c in id_columns if c != scorer.schema.row_id_column))
    missing = [c for c in ids if c not in frame.columns]
    if missing:
        raise InputError(f"table '{TABLE}' has no id column(s) {missing} (columns: {frame.columns})")
    result = pl.concat([frame.select(ids), scorer.score(frame, batch_size)], how="horizontal")
    write_parquet(result, out)
    return result
