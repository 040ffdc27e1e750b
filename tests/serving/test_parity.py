"""The artifact scores exactly as the checkpoint does: every architecture, any batch size, every fusion form."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from mtr.cli import main
from mtr.data.batch import sparse_batch
from mtr.data.preprocess import encode_features
from mtr.models.checkpoint import load_trained_model
from mtr.models.outputs import binary_tasks, task_predictions
from mtr.scoring.candidates import score_candidates
from mtr.scoring.fusion import FusionInputs, fuse
from mtr.scoring.groups import CandidateGroups, channel_codes
from mtr.scoring.weights import FusionWeights
from mtr.serving.export import export_artifact, random_inputs
from mtr.serving.program import ScoringProgram
from mtr.serving.scorer import Scorer

TOLERANCE = 1e-5
REPO_ROOT = Path(__file__).resolve().parents[2]


def reference(checkpoint: Path, candidates: pl.DataFrame, fusion: FusionWeights) -> tuple[np.ndarray, np.ndarray]:
    """Task probabilities [N, T] and scores [N] the eager way: the rebuilt checkpoint, then `fusion.fuse`.

    `candidates` must be in group order (each opportunity's rows together, "none" first)."""
    model, schema = load_trained_model(checkpoint.parent.parent, str(checkpoint))
    features = encode_features(candidates, schema)
    with torch.no_grad():
        logits = model(
            sparse_batch([f.name for f in schema.sparse_features], torch.from_numpy(features.sparse_ids)),
            torch.from_numpy(features.dense),
        )
    channel = channel_codes(candidates["channel"])
    sizes = candidates.group_by("row_id", maintain_order=True).len()["len"].to_numpy()
    groups = CandidateGroups.build(sizes, channel, np.zeros(sizes.size), np.zeros(sizes.size))
    own = score_candidates(model, schema, candidates, channel.astype(np.int64))
    return task_predictions(logits, binary_tasks(schema)).numpy(), fuse(FusionInputs(groups, own), fusion)


def test_artifact_scores_equal_the_checkpoint_for_every_architecture(
    model_config, serving, toy_dataset, toy_schema, tmp_path
):
    checkpoint = serving.write_run(tmp_path / "run", toy_schema, model_config, seed=3)
    export_artifact(checkpoint, serving.write_weights(tmp_path / "weights.json"), tmp_path / "artifact", aoti=False)
    candidates = serving.toy_candidates(toy_dataset, opportunities=60)

    scored = Scorer.load(tmp_path / "artifact").score(candidates)
    probabilities, scores = reference(checkpoint, candidates, serving.fusion)

    columns = [f"p_{name}" for name in toy_schema.task_names]
    assert scored.columns == [*columns, "score", "action_probability"]
    np.testing.assert_allclose(scored.select(columns).to_numpy(), probabilities, rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(scored["score"].to_numpy(), scores, rtol=0, atol=TOLERANCE)
    assert np.all(scored["score"].to_numpy()[candidates["channel"].to_numpy() == "none"] == 0.0)
    assert np.ptp(scores) > 0.01  # the rows really differ, so equality is not trivial


@pytest.mark.parametrize("batch", [1, 7, 200])
def test_exported_program_has_a_dynamic_batch(batch, mmoe_artifact, toy_schema):
    scorer = Scorer.load(mmoe_artifact)
    model, schema = load_trained_model(mmoe_artifact.parent / "run", "last.ckpt")
    eager = ScoringProgram(model, schema, scorer.artifact.operating_point.fusion)
    inputs = random_inputs(toy_schema, batch, seed=batch)
    with torch.no_grad():
        for got, want in zip(scorer.program(*inputs), eager(*inputs), strict=True):
            assert got.shape[0] == batch
            torch.testing.assert_close(got, want, rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize(
    "fusion",
    [
        FusionWeights(conversion=1.0, unsubscribe=2.0, transform="log", floor=0.02),
        FusionWeights(conversion=1.0, engagement=0.5, unsubscribe=3.0, form="product", send_cost=0.001),
        FusionWeights(conversion=2.0, retention=1.0, per_channel={"push": {"unsubscribe": 8.0, "send_cost": 0.05}}),
    ],
    ids=["log", "product", "per_channel"],
)
def test_program_fusion_equals_fusion_fuse_with_value(fusion, serving, toy_dataset, toy_schema, tmp_path):
    checkpoint = serving.write_run(tmp_path / "run", toy_schema, serving.architectures["shared_bottom"], seed=1)
    model, schema = load_trained_model(tmp_path / "run", str(checkpoint))
    candidates = serving.toy_candidates(toy_dataset, opportunities=40)
    value = np.random.default_rng(0).uniform(0.5, 3.0, candidates.height).astype(np.float32)
    scorer_inputs = _inputs(schema, candidates, value)
    with torch.no_grad():
        _, scores = ScoringProgram(model, schema, fusion)(*scorer_inputs)

    channel = channel_codes(candidates["channel"])
    groups = CandidateGroups.build(np.full(40, 4), channel, np.zeros(40), np.zeros(40))
    own = score_candidates(model, schema, candidates, channel.astype(np.int64))
    np.testing.assert_allclose(scores.numpy(), fuse(FusionInputs(groups, own, value), fusion), rtol=0, atol=TOLERANCE)


def _inputs(schema, candidates: pl.DataFrame, value: np.ndarray) -> tuple[torch.Tensor, ...]:
    features = encode_features(candidates, schema)
    channel = torch.from_numpy(channel_codes(candidates["channel"]).astype(np.int64))
    baseline = torch.arange(candidates.height) // 4 * 4  # toy candidates: groups of 4, "none" first
    return (
        torch.from_numpy(features.sparse_ids),
        torch.from_numpy(features.dense),
        channel,
        baseline,
        torch.from_numpy(value),
    )


def test_lightning_fit_export_score_matches_lightning_predict(serving, toy_dataset, tmp_path):
    """End to end through the `mtr` command: fit, predict (Lightning), export, score (artifact)."""
    quiet = ["--wandb", "false", "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
    run = tmp_path / "run"
    main(
        ["fit", "--config", str(REPO_ROOT / "configs/experiment/sim_mmoe.yaml"), "--data.path", str(toy_dataset)]
        + ["--trainer.default_root_dir", str(run), "--trainer.max_epochs", "1", "--data.batch_size", "512", *quiet]
    )
    checkpoint = run / "checkpoints" / "last.ckpt"
    predictions = tmp_path / "predictions.parquet"
    main(
        ["predict", "--config", str(run / "config.yaml"), "--ckpt_path", str(checkpoint)]
        + ["--predictions", str(predictions), "--trainer.logger", "false", *quiet]
    )
    main(
        ["export", "--checkpoint", str(checkpoint), "--weights", str(serving.write_weights(tmp_path / "w.json"))]
        + ["--out", str(tmp_path / "artifact"), "--aoti", "false"]
    )
    # Every logged test row as a candidate, plus the "none" candidate its opportunity needs.
    test_rows = pl.read_parquet(toy_dataset / "test.parquet")
    nones = test_rows.filter(pl.col("channel") != "none").with_columns(pl.lit("none").alias("channel"))
    candidates = pl.concat([test_rows.with_columns(logged=True), nones.with_columns(logged=False)])
    candidates.write_parquet(tmp_path / "candidates.parquet")
    main(
        ["score", "--artifact", str(tmp_path / "artifact"), "--input", str(tmp_path / "candidates.parquet")]
        + ["--out", str(tmp_path / "scores.parquet"), "--id_columns", "[logged]"]
    )

    scores = pl.read_parquet(tmp_path / "scores.parquet").filter("logged").drop("logged", "score", "action_probability")
    lightning = pl.read_parquet(predictions)
    assert scores.columns == lightning.columns and scores.height == lightning.height == test_rows.height
    assert scores["row_id"].to_list() == lightning["row_id"].to_list()
    np.testing.assert_allclose(scores.drop("row_id").to_numpy(), lightning.drop("row_id").to_numpy(), atol=TOLERANCE)
    manifest = json.loads((tmp_path / "artifact" / "manifest.json").read_text())
    assert manifest["data_fingerprint"] == json.loads((run / "run_info.json").read_text())["data_fingerprint"]
    assert 0 < manifest["metrics"]["val/selection"] < 1 and manifest["checkpoint"]["epoch"] == 0


@pytest.mark.slow
def test_aoti_package_scores_equal_the_exported_program(serving, toy_dataset, toy_schema, tmp_path):
    checkpoint = serving.write_run(tmp_path / "run", toy_schema, serving.architectures["ple"], seed=5)
    manifest = export_artifact(checkpoint, serving.write_weights(tmp_path / "weights.json"), tmp_path / "artifact")
    assert manifest["aoti"]["file"] == "program_aoti.pt2", manifest["aoti"]
    candidates = serving.toy_candidates(toy_dataset, opportunities=60)
    exported = Scorer.load(tmp_path / "artifact").score(candidates)
    compiled = Scorer.load(tmp_path / "artifact", runtime="aoti").score(candidates)
    np.testing.assert_allclose(compiled.to_numpy(), exported.to_numpy(), rtol=0, atol=TOLERANCE)
