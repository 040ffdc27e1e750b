"""The artifact on disk: manifest contents, checksums, refusal of tampered or pickled files, atomic export."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from mtr.errors import InputError
from mtr.io import OUTPUT_MARKER, sha256_file
from mtr.serving import export as export_module
from mtr.serving.artifact import MANIFEST_FILE, PROGRAM_FILE, verify_artifact
from mtr.serving.export import export_artifact
from mtr.serving.scorer import Scorer


@pytest.fixture
def artifact(mmoe_artifact: Path, tmp_path: Path) -> Path:
    """A private copy of the shared artifact, free to tamper with."""
    return Path(shutil.copytree(mmoe_artifact, tmp_path / "artifact"))


def _manifest(folder: Path) -> dict:
    return json.loads((folder / MANIFEST_FILE).read_text())


def test_manifest_describes_features_tasks_fusion_provenance_and_checksums(mmoe_artifact, toy_schema):
    manifest = _manifest(mmoe_artifact)
    names = [f["name"] for f in manifest["features"]]
    assert names == ["country", "plan", "channel", "hour", "tenure_days", "sends_7d"]  # sparse, then dense
    plan = manifest["features"][1]
    assert plan["dtype"] == "String" and plan["vocabulary_size"] == 4 and plan["input"] == "sparse_ids[:, 1]"
    assert manifest["features"][4]["preprocessing"].startswith("(sign(x) * log1p(|x|) - ")
    assert manifest["tasks"] == toy_schema.task_names
    assert manifest["fusion"]["unsubscribe"] == 4.0 and manifest["fusion"]["send_cost"] == 0.01
    assert manifest["policy"]["threshold"] == 0.002
    assert manifest["metrics"] == {"val/selection": 0.625}  # the checkpoint's epoch 2, gate statistics left out
    assert manifest["data_fingerprint"] == "f" * 64 and manifest["checkpoint"]["epoch"] == 2
    assert {"torch", "torchrec", "polars", "mtr", "python"} <= set(manifest["versions"])
    assert manifest["aoti"] == {"reason": "not requested (--aoti false)"}
    files = sorted(p.name for p in mmoe_artifact.iterdir() if p.name not in (MANIFEST_FILE, OUTPUT_MARKER))
    assert sorted(manifest["files"]) == files == ["program.pt2", "schema.json", "weights.json"]
    assert all(manifest["files"][name] == sha256_file(mmoe_artifact / name) for name in files)


@pytest.mark.parametrize("name", ["program.pt2", "schema.json", "weights.json"])
def test_a_flipped_byte_is_rejected_naming_the_file(artifact, name):
    path = artifact / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match=f"checksum mismatch for '{name}'"):
        Scorer.load(artifact)


def test_missing_and_unlisted_files_are_rejected(artifact):
    (artifact / "extra.bin").write_bytes(b"x")
    with pytest.raises(InputError, match=r"\['extra.bin'\] not listed"):
        verify_artifact(artifact)
    (artifact / "extra.bin").unlink()
    (artifact / "weights.json").unlink()
    with pytest.raises(InputError, match="'weights.json' listed in manifest.json is missing"):
        verify_artifact(artifact)


def test_a_hand_edited_manifest_is_rejected(artifact):
    manifest = _manifest(artifact)
    manifest["fusion"]["unsubscribe"] = 0.0  # the program still computes with 4.0
    (artifact / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="field 'fusion' disagrees"):
        verify_artifact(artifact)
    (artifact / MANIFEST_FILE).write_text(json.dumps({"version": 1}))
    with pytest.raises(InputError, match="missing field"):
        verify_artifact(artifact)


@pytest.mark.parametrize("at", [0.3, 0.6, 0.9])
def test_a_flipped_byte_in_the_program_with_a_re_hashed_manifest_is_named(artifact, at):
    """The checksum guards against accidents; a byte flipped and re-hashed must still give a named error."""
    path = artifact / PROGRAM_FILE
    data = bytearray(path.read_bytes())
    data[int(at * len(data))] ^= 0xFF
    path.write_bytes(bytes(data))
    manifest = _manifest(artifact)
    manifest["files"][PROGRAM_FILE] = sha256_file(path)
    (artifact / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(InputError, match=r"program.pt2"):
        Scorer.load(artifact)


def test_a_program_archive_with_pickled_entries_is_not_loaded(artifact, monkeypatch):
    """torch.export.load unpickles sample inputs; an archive that carries them is refused before loading."""
    program = torch.export.load(artifact / PROGRAM_FILE)
    program.example_inputs = (tuple(torch.zeros(1) for _ in range(5)), {})
    torch.export.save(program, artifact / PROGRAM_FILE)
    manifest = _manifest(artifact)
    manifest["files"][PROGRAM_FILE] = sha256_file(artifact / PROGRAM_FILE)  # a consistent, re-hashed manifest
    (artifact / MANIFEST_FILE).write_text(json.dumps(manifest))
    monkeypatch.setattr(torch.export, "load", lambda *a, **k: pytest.fail("the archive was loaded"))
    with pytest.raises(InputError, match="refusing to load 'program.pt2': .*pickled sample inputs"):
        Scorer.load(artifact)


def test_a_failed_export_leaves_nothing_and_keeps_the_previous_artifact(artifact, mmoe_artifact, monkeypatch):
    checkpoint = mmoe_artifact.parent / "run" / "checkpoints" / "last.ckpt"
    before = {p.name: p.read_bytes() for p in artifact.iterdir()}

    def disk_full(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(export_module, "write_json", disk_full)  # fails after the program and schema were written
    for out in (artifact, artifact.parent / "new"):
        with pytest.raises(OSError, match="disk full"):
            export_artifact(checkpoint, mmoe_artifact.parent / "weights.json", out, aoti=False)
    assert sorted(p.name for p in artifact.parent.iterdir()) == ["artifact"]  # no "new", no temporary folders
    assert {p.name: p.read_bytes() for p in artifact.iterdir()} == before


def test_export_never_replaces_the_run_it_exports_nor_a_folder_it_did_not_write(mmoe_artifact, tmp_path):
    run = mmoe_artifact.parent / "run"
    checkpoint, weights = run / "checkpoints" / "last.ckpt", mmoe_artifact.parent / "weights.json"
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    for out in (run, run / "checkpoints", run / "artifact"):
        with pytest.raises(InputError, match="overlaps the input"):
            export_artifact(checkpoint, weights, out, aoti=False, overwrite=True)
    foreign = tmp_path / "results"
    foreign.mkdir()
    (foreign / "paper.tex").write_text("draft")
    with pytest.raises(InputError, match="written by no mtr command"):
        export_artifact(checkpoint, weights, foreign, aoti=False)
    assert (foreign / "paper.tex").read_text() == "draft"
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_a_failing_compiler_is_recorded_and_the_program_still_serves(serving, toy_schema, tmp_path, monkeypatch):
    def no_compiler(*args, **kwargs):
        raise RuntimeError("no C++ compiler found")

    monkeypatch.setattr(torch._inductor, "aoti_compile_and_package", no_compiler)
    checkpoint = serving.write_run(tmp_path / "run", toy_schema, serving.architectures["single_task"])
    manifest = export_artifact(checkpoint, serving.write_weights(tmp_path / "w.json"), tmp_path / "artifact")
    assert manifest["aoti"]["reason"].endswith("RuntimeError: no C++ compiler found")
    assert not (tmp_path / "artifact" / "program_aoti.pt2").exists()
    with pytest.raises(InputError, match="has no AOTInductor package: .*no C\\+\\+ compiler"):
        Scorer.load(tmp_path / "artifact", runtime="aoti")
    assert Scorer.load(tmp_path / "artifact").program is not None
