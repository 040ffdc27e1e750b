"""`mtr export`: a trained checkpoint and an operating point -> one serving artifact folder.

The architecture is rebuilt from the run folder's saved config and the checkpoint's weights
(`load_trained_model`), wrapped with the fusion of `weights.json` (`ScoringProgram`), exported with a
dynamic batch, checked against the eager module on random inputs, and written with its manifest
through `atomic_output_dir`, so a failed export leaves nothing behind.
"""

from __future__ import annotations

import datetime
import json
import platform
from dataclasses import replace
from importlib import metadata
from pathlib import Path
from typing import Any

import polars as pl
import torch

from mtr.errors import InputError
from mtr.io import atomic_output_dir, check_output_dir, sha256_file, write_json
from mtr.models.checkpoint import load_trained_model
from mtr.schema import DatasetSchema
from mtr.scoring.operating_point import WEIGHTS_FILE, OperatingPoint
from mtr.serving.artifact import (
    AOTI_FILE,
    MANIFEST_FILE,
    MANIFEST_VERSION,
    PROGRAM_FILE,
    decision_entry,
    feature_summary,
)
from mtr.serving.program import INPUT_NAMES, OUTPUT_NAMES, ScoringProgram, export_program, save_program

PARITY_TOLERANCE = 1e-5
VERSIONED_PACKAGES = ("mtr", "torch", "torchrec", "lightning", "polars", "numpy")


def export_artifact(
    checkpoint: Path | str,
    weights: Path | str,
    out: Path | str,
    run_dir: Path | str | None = None,
    value_column: str | None = None,
    aoti: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write the serving artifact of `checkpoint` with the operating point `weights` to `out`.

    Args:
        checkpoint: a checkpoint written by `mtr fit`.
        weights: an operating point (`weights.json`, from `mtr pareto`); its weights must name objectives of
            the checkpoint's schema.
        out: the artifact folder to create; an existing one is replaced only when it is an earlier export (or
            with `overwrite`), never when it overlaps the run, checkpoint or weights (`mtr.io.check_output_dir`).
        run_dir: the run folder holding config.yaml and run_info.json; default: the checkpoint's
            folder's parent (Lightning's `RUN/checkpoints/FILE.ckpt` layout).
        value_column: candidates column that scales the value-scaled objectives (fusion `use_value`).
        aoti: also compile an AOTInductor package; when compiling fails the manifest says why.
        overwrite: replace `out` even when it is not an earlier export.

    Returns:
        The manifest written to `out/manifest.json`.
    """
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise InputError(f"checkpoint not found: {checkpoint}")
    run_dir = Path(run_dir) if run_dir is not None else checkpoint.resolve().parent.parent
    inputs = [checkpoint, weights, run_dir]
    check_output_dir(out, "export", overwrite, inputs)
    model, schema = load_trained_model(run_dir, str(checkpoint))
    run_info = _run_info(run_dir)  # before the slow part: a run folder without it cannot be exported
    point = OperatingPoint.load(weights, schema.objective_table)
    # Every objective's weight named, so that the artifact's weights.json and manifest say what the program does.
    point = replace(point, fusion=point.fusion.resolved(schema.objective_table))
    program = ScoringProgram(model, schema, point.fusion)
    exported = export_program(program, schema)
    _check_parity(program, exported.module(), schema, "the exported program")
    with atomic_output_dir(out, "export", overwrite, inputs) as folder:
        save_program(exported, folder / PROGRAM_FILE)
        schema.save(folder)
        point.save(folder / WEIGHTS_FILE)
        aoti_status = (
            _compile_aoti(exported, program, schema, folder / AOTI_FILE)
            if aoti
            else {"reason": "not requested (--aoti false)"}
        )
        manifest = _manifest(schema, point, aoti_status, value_column, checkpoint, run_dir, run_info)
        manifest["files"] = {p.name: sha256_file(p) for p in sorted(folder.iterdir())}
        write_json(folder / MANIFEST_FILE, manifest)
    return manifest


def _manifest(
    schema: DatasetSchema,
    point: OperatingPoint,
    aoti_status: dict[str, Any],
    value_column: str | None,
    checkpoint: Path,
    run_dir: Path,
    run_info: dict[str, Any],
) -> dict[str, Any]:
    """Every manifest field but the file checksums (see `mtr.serving.artifact`)."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    return {
        "version": MANIFEST_VERSION,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "program": _program_entry(schema),
        "aoti": aoti_status,
        "features": feature_summary(schema),
        "tasks": schema.task_names,
        "row_id_column": schema.row_id_column,
        "channel_column": schema.channel_column,
        "value_column": value_column,
        "fusion": point.to_dict()["fusion"],
        "policy": point.to_dict()["policy"],
        "decision": decision_entry(point.policy),
        "operating_point": {"estimates": point.estimates, "provenance": point.provenance},
        "checkpoint": {
            "file": checkpoint.name,
            "sha256": sha256_file(checkpoint),
            "epoch": state.get("epoch"),
            "global_step": state.get("global_step"),
            "git_commit": run_info.get("git_commit"),
        },
        "metrics": _checkpoint_metrics(run_dir, state.get("epoch", 0)),
        "data_fingerprint": run_info["data_fingerprint"],
        "versions": _versions(),
    }


def _program_entry(schema: DatasetSchema) -> dict[str, Any]:
    n_sparse, n_dense = len(schema.sparse_features), len(schema.dense_features)
    shapes = {
        "sparse_ids": ("int64", ["B", n_sparse]),
        "dense": ("float32", ["B", n_dense]),
        "channel": ("int64", ["B"]),
        "baseline": ("int64", ["B"]),
        "value": ("float32", ["B"]),
    }
    return {
        "file": PROGRAM_FILE,
        "inputs": [{"name": n, "dtype": shapes[n][0], "shape": shapes[n][1]} for n in INPUT_NAMES],
        "outputs": [
            {"name": OUTPUT_NAMES[0], "dtype": "float32", "shape": ["B", len(schema.tasks)]},
            {"name": OUTPUT_NAMES[1], "dtype": "float32", "shape": ["B"]},
        ],
        "channel_codes": "push 0, email 1, in_app 2, none 3",
        "baseline": "batch position of the candidate's opportunity's 'none' candidate",
    }


def random_inputs(schema: DatasetSchema, batch: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Valid random program inputs: groups of 4 candidates, the first of each "none"."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.stack(
        [torch.randint(0, f.num_embeddings, (batch,), generator=generator) for f in schema.sparse_features], dim=1
    ).reshape(batch, len(schema.sparse_features))
    dense = torch.randn(batch, len(schema.dense_features), generator=generator)
    position = torch.arange(batch)
    channel = torch.where(position % 4 == 0, 3, torch.randint(0, 3, (batch,), generator=generator))
    return ids, dense, channel, position - position % 4, torch.rand(batch, generator=generator) * 2


@torch.no_grad()
def _check_parity(program: ScoringProgram, candidate: Any, schema: DatasetSchema, what: str) -> None:
    """Raise unless `candidate` reproduces the eager program within PARITY_TOLERANCE at a few batch sizes."""
    for batch in (1, 7, 64):
        inputs = random_inputs(schema, batch, seed=batch)
        for name, got, want in zip(OUTPUT_NAMES, candidate(*inputs), program(*inputs), strict=True):
            error = float((got - want).abs().max())
            if not error <= PARITY_TOLERANCE:
                raise RuntimeError(
                    f"{what} differs from the eager model: max |{name} error| {error:.3g} at batch {batch}"
                )


def _compile_aoti(
    exported: torch.export.ExportedProgram, program: ScoringProgram, schema: DatasetSchema, path: Path
) -> dict[str, Any]:
    """Compile the AOTInductor package; any compiler failure is recorded, not raised (the .pt2 still serves)."""
    try:
        torch._inductor.aoti_compile_and_package(exported, package_path=str(path))
        _check_parity(program, torch._inductor.aoti_load_package(str(path)), schema, "the AOTInductor package")
    except Exception as error:  # noqa: BLE001 (a missing or failing C++ toolchain must not fail the export)
        path.unlink(missing_ok=True)
        return {"reason": f"AOTInductor compilation failed: {type(error).__name__}: {str(error)[:500]}"}
    return {"file": AOTI_FILE, "platform": f"{platform.system()} {platform.machine()}"}


def _checkpoint_metrics(run_dir: Path, epoch: int) -> dict[str, float]:
    """The last validation metrics logged up to the checkpoint's epoch (gate statistics left out)."""
    path = run_dir / "metrics.csv"
    if not path.exists():
        return {}
    table = pl.read_csv(path, infer_schema_length=None)
    columns = [c for c in table.columns if c.startswith("val/") and not c.startswith("val/gates/")]
    if "epoch" not in table.columns or not columns:
        return {}
    rows = table.filter((pl.col("epoch") <= epoch) & pl.col(columns[0]).is_not_null())
    if rows.height == 0:
        return {}
    last = rows.select(columns).row(-1, named=True)
    return {name: float(value) for name, value in last.items() if value is not None}


def _run_info(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "run_info.json"
    if not path.exists():
        raise InputError(f"run folder {run_dir}: run_info.json not found (the data fingerprint comes from it)")
    info = json.loads(path.read_text())
    if "data_fingerprint" not in info:
        raise InputError(f"{path}: field 'data_fingerprint' is missing")
    return info


def _versions() -> dict[str, str]:
    versions = {name: metadata.version(name) for name in VERSIONED_PACKAGES}
    return versions | {"python": platform.python_version()}
