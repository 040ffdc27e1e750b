"""`mtr score` on raw candidate rows: schema checks that name the column, grouping, order, the output file."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from mtr.cli import main
from mtr.errors import InputError
from mtr.scoring.operating_point import OperatingPoint
from mtr.scoring.policy import PolicyConfig
from mtr.scoring.weights import FusionWeights
from mtr.serving.export import export_artifact
from mtr.serving.scorer import Scorer


@pytest.fixture(scope="module")
def scorer(mmoe_artifact) -> Scorer:
    return Scorer.load(mmoe_artifact)


@pytest.fixture(scope="module")
def candidates(serving, toy_dataset) -> pl.DataFrame:
    return serving.toy_candidates(toy_dataset, opportunities=30)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop("plan"), "table 'candidates' has no column 'plan'"),
        (lambda f: f.with_columns(pl.col("tenure_days").cast(pl.String)), "column 'tenure_days' has dtype String"),
        (lambda f: f.with_columns(pl.col("hour").cast(pl.Float64)), "column 'hour' has dtype Float64"),
        (lambda f: f.with_columns(pl.col("country").cast(pl.Categorical).to_physical()), "column 'country'"),
        (lambda f: f.drop("row_id"), "has no column 'row_id'"),
        (lambda f: f.with_columns(pl.lit("sms").alias("channel")), "unknown channels \\['sms'\\]"),
        (
            lambda f: f.with_columns(
                tenure_days=pl.when(pl.int_range(pl.len()) == 0)
                .then(float("inf"))
                .otherwise(pl.col("tenure_days").cast(float))
            ),
            "column 'tenure_days': 1 infinite value",
        ),
    ],
    ids=["missing", "dense_as_text", "int_id_as_float", "string_as_codes", "no_row_id", "unknown_channel", "infinity"],
)
def test_schema_mismatch_names_the_column(scorer, candidates, change, message):
    with pytest.raises(InputError, match=message):
        scorer.score(change(candidates))


def test_every_opportunity_needs_one_none_candidate(scorer, candidates):
    without = candidates.filter(~((pl.col("row_id") == candidates["row_id"][4]) & (pl.col("channel") == "none")))
    with pytest.raises(InputError, match=f"exactly one 'none' candidate.*row_id \\[{candidates['row_id'][4]}\\]"):
        scorer.score(without)
    doubled = pl.concat([candidates, candidates.head(1)])
    with pytest.raises(InputError, match=f"row_id \\[{candidates['row_id'][0]}\\]"):
        scorer.score(doubled)


def test_scores_follow_input_order_and_do_not_depend_on_batching(scorer, candidates):
    whole = scorer.score(candidates).with_columns(candidates["candidate_id"])
    shuffled = candidates.sample(fraction=1.0, shuffle=True, seed=1)
    small_batches = scorer.score(shuffled, batch_size=5).with_columns(shuffled["candidate_id"])
    joined = whole.join(small_batches, on="candidate_id", suffix="_shuffled")
    assert joined.height == candidates.height
    np.testing.assert_allclose(joined["score"].to_numpy(), joined["score_shuffled"].to_numpy(), rtol=0, atol=1e-6)
    assert scorer.score(shuffled.filter(pl.col("row_id") == shuffled["row_id"][0])).height == 4


def test_an_unseen_category_takes_the_unknown_id_as_in_training(scorer, candidates):
    """Unseen categories take id 0 in serving exactly as in training: the rows still score."""
    unseen = candidates.with_columns(pl.lit("zz").alias("country"))
    scores = scorer.score(unseen)["score"].to_numpy()
    assert np.all(np.isfinite(scores)) and not np.allclose(scores, scorer.score(candidates)["score"].to_numpy())


def test_score_command_writes_ids_probabilities_and_scores(mmoe_artifact, candidates, toy_schema, tmp_path, capsys):
    candidates.write_parquet(tmp_path / "candidates.parquet")
    out = tmp_path / "out" / "scores.parquet"
    main(
        ["score", "--artifact", str(mmoe_artifact), "--input", str(tmp_path / "candidates.parquet")]
        + ["--out", str(out), "--id_columns", "[candidate_id]"]
    )
    assert f"scores: {out} ({candidates.height} candidates)" in capsys.readouterr().out
    scores = pl.read_parquet(out)
    tasks = [f"p_{t}" for t in toy_schema.task_names]
    assert scores.columns == ["row_id", "candidate_id", *tasks, "score", "action_probability"]
    assert scores["candidate_id"].to_list() == candidates["candidate_id"].to_list()
    sends = scores.filter(pl.col("score") != 0)
    assert sends.height == candidates.filter(pl.col("channel") != "none").height  # none scores exactly 0
    with pytest.raises(InputError, match="no id column\\(s\\) \\['offer_id'\\]"):
        main(
            ["score", "--artifact", str(mmoe_artifact), "--input", str(tmp_path / "candidates.parquet")]
            + ["--out", str(out), "--id_columns", "[offer_id]"]
        )


def _by_opportunity(frame: pl.DataFrame) -> list[pl.DataFrame]:
    return frame.partition_by("row_id", maintain_order=True)


def _scored(serving, toy_schema, candidates, folder, policy: PolicyConfig) -> tuple[pl.DataFrame, dict]:
    """Scores of `candidates` by the toy MMoE (the `scorer` fixture's model) exported with `policy`."""
    point = OperatingPoint(serving.fusion, policy)
    checkpoint = serving.write_run(folder / "run", toy_schema, serving.architectures["mmoe"])
    manifest = export_artifact(checkpoint, point.save(folder / "w.json"), folder / "artifact", aoti=False)
    scored = Scorer.load(folder / "artifact").score(candidates)
    return scored.with_columns(candidates["row_id"], candidates["channel"]), manifest


def _median_best_send(scorer, candidates) -> float:
    """The median over opportunities of the best send's score: a threshold that some opportunities pass."""
    scores = scorer.score(candidates).with_columns(candidates["row_id"], candidates["channel"])
    best = scores.filter(pl.col("channel") != "none").group_by("row_id").agg(pl.col("score").max())
    return float(best["score"].median())


def _sends_of_a_deterministic_policy(scored: pl.DataFrame, threshold: float) -> int:
    """Checks that each opportunity gives probability 1 to its best send past `threshold`, else to "none";
    returns how many opportunities send."""
    sends = 0
    for opportunity in _by_opportunity(scored):
        best = opportunity.filter(pl.col("channel") != "none")["score"].max()
        chosen = opportunity.filter(pl.col("action_probability") == 1.0)
        assert chosen.height == 1 and opportunity["action_probability"].sum() == 1.0
        assert chosen["score"][0] == best if best > threshold else chosen["channel"][0] == "none"
        sends += int(best > threshold)
    return sends


def test_a_deterministic_point_gives_probability_1_to_the_best_send_past_the_threshold(
    serving, toy_schema, scorer, candidates, tmp_path
):
    threshold = _median_best_send(scorer, candidates)
    scored, manifest = _scored(serving, toy_schema, candidates, tmp_path, PolicyConfig(threshold=threshold))
    assert f"threshold {threshold:g}" in manifest["decision"]["rule"]
    sends = _sends_of_a_deterministic_policy(scored, threshold)
    assert 0 < sends < scored["row_id"].n_unique()  # both outcomes occur, so the check is not trivial
    # The policy does not change the scores; the default artifact's threshold (0.002) decides the same way.
    default = scorer.score(candidates).with_columns(candidates["row_id"], candidates["channel"])
    np.testing.assert_array_equal(scored["score"].to_numpy(), default["score"].to_numpy())
    _sends_of_a_deterministic_policy(default, 0.002)


def test_a_softmax_point_is_exported_with_its_temperature_and_scores_its_probabilities(
    serving, toy_schema, scorer, candidates, tmp_path
):
    threshold = _median_best_send(scorer, candidates)
    spread = scorer.score(candidates)["score"]
    temperature = float(spread.max() - spread.min())  # logits within 1 of each other: no argmax in disguise
    policy = PolicyConfig(threshold=threshold, temperature=temperature)
    soft, manifest = _scored(serving, toy_schema, candidates, tmp_path, policy)
    assert manifest["policy"]["temperature"] == temperature and "softmax" in manifest["decision"]["rule"]
    for opportunity in _by_opportunity(soft):
        logits = np.where(opportunity["channel"] == "none", threshold, opportunity["score"]) / temperature
        expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
        np.testing.assert_allclose(opportunity["action_probability"].to_numpy(), expected, rtol=1e-5, atol=1e-7)
    assert 0.0 < soft["action_probability"].min() and soft["action_probability"].max() < 0.99


def test_export_refuses_weights_on_objectives_the_model_does_not_predict(serving, toy_schema, tmp_path):
    point = OperatingPoint(FusionWeights(conversion=1.0, purchase_value=0.5))
    checkpoint = serving.write_run(tmp_path / "run", toy_schema, serving.architectures["single_task"])
    with pytest.raises(InputError, match=r"\['purchase_value'\], which are not objectives"):
        export_artifact(checkpoint, point.save(tmp_path / "w.json"), tmp_path / "artifact", aoti=False)
    assert not (tmp_path / "artifact").exists()
