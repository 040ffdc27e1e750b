"""`mtr export` and `mtr score`: hand a trained model to serving, and score candidates with what was handed."""

from __future__ import annotations

from pathlib import Path


def export(
    checkpoint: Path,
    weights: Path,
    out: Path,
    run_dir: Path | None = None,
    value_column: str | None = None,
    aoti: bool = True,
    overwrite: bool = False,
) -> None:
    """Write a serving artifact: the model and score fusion as one `torch.export` program plus manifest.json.

    Args:
        checkpoint: a checkpoint written by `mtr fit`, e.g. RUN/checkpoints/last.ckpt.
        weights: the operating point (weights.json written by `mtr pareto`).
        out: the artifact folder (written to a temporary folder and renamed at the end).
        run_dir: the run folder with config.yaml and run_info.json (default: the checkpoint's run folder).
        value_column: candidates column that scales the value-scaled objectives (conversion), if the fusion uses one.
        aoti: also compile an AOTInductor package (skipped, with the reason in the manifest, if it fails).
        overwrite: replace `out` even when it is not an earlier export (never the run, checkpoint or weights).
    """
    from mtr.serving.export import export_artifact

    manifest = export_artifact(checkpoint, weights, out, run_dir, value_column, aoti, overwrite)
    aoti_note = manifest["aoti"].get("file") or f"none ({manifest['aoti']['reason']})"
    print(f"artifact: {out} (program {manifest['program']['file']}, AOTInductor {aoti_note})")


def score(
    artifact: Path,
    input: Path,  # noqa: A002 (the command line's --input)
    out: Path,
    id_columns: list[str] | None = None,
    runtime: str = "export",
    batch_size: int = 2048,
) -> None:
    """Score raw candidate rows: every task's prediction `p_{task}`, the ranking `score` and the `action_probability`
    of each candidate under the operating point's policy (deterministic: 1 for the chosen one; softmax).

    Args:
        artifact: a folder written by `mtr export`; its manifest and checksums are verified first.
        input: candidates Parquet file: the raw feature columns, the opportunity key (row id) and the
            channel, with one "none" candidate per opportunity.
        out: output Parquet file: the row id, `id_columns`, `p_{task}` for every task, `score` and
            `action_probability` (frequency caps are not applied: a request holds no send history).
        id_columns: more input columns to copy to the output, e.g. candidate_id.
        runtime: "export" (the .pt2 program) or "aoti" (the AOTInductor package).
        batch_size: candidates per program call (opportunities are never split).
    """
    from mtr.serving.scorer import score_file

    scores = score_file(artifact, input, out, tuple(id_columns or ()), runtime, batch_size)
    print(f"scores: {out} ({scores.height} candidates)")
