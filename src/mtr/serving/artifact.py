"""The serving artifact on disk: its files, `manifest.json`, and the checks run before anything is loaded.

An artifact folder holds

    program.pt2        the `torch.export` program (architecture + fusion), see `mtr.serving.program`
    program_aoti.pt2   its AOTInductor package, when the exporting machine could compile one
    schema.json        the dataset schema: feature order, vocabularies, transforms and scaling
    weights.json       the operating point (fusion weights, policy: threshold, temperature, cap)
    manifest.json      what the artifact is (below) and the SHA-256 of every other file

Loading verifies, in this order: the manifest's fields, that the folder holds exactly the listed files
with the listed checksums, that every program archive stores its weights as raw tensor bytes with no pickled
entries (`torch.export.load` unpickles any entry that the archive marks as pickled), and that the manifest
agrees with schema.json and weights.json. Only then is a program loaded.
The checksums protect against corrupted or edited files, not against someone who rewrites the manifest
too; an AOTInductor package is native code, so load one only from a trusted source.
"""

from __future__ import annotations

import json
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtr.errors import InputError
from mtr.io import OUTPUT_MARKER, sha256_file
from mtr.schema import SCHEMA_FILE, DatasetSchema
from mtr.scoring.operating_point import WEIGHTS_FILE, OperatingPoint
from mtr.scoring.policy import PolicyConfig

MANIFEST_FILE = "manifest.json"
PROGRAM_FILE = "program.pt2"
AOTI_FILE = "program_aoti.pt2"
MANIFEST_VERSION = 1
REQUIRED_FIELDS = ("version", "program", "aoti", "features", "tasks", "fusion", "policy", "files")


def feature_summary(schema: DatasetSchema) -> list[dict[str, Any]]:
    """The features in input order, as a reader of the manifest needs them: kind, raw dtype, preprocessing."""
    summary = []
    for position, feature in enumerate((*schema.sparse_features, *schema.dense_features)):
        entry: dict[str, Any] = {"name": feature.name, "kind": feature.kind, "dtype": feature.dtype}
        if feature.kind == "sparse":
            entry["input"] = f"sparse_ids[:, {position}]"
            entry["vocabulary_size"] = feature.num_embeddings
            entry["preprocessing"] = (
                f"hash: 1 + crc32(utf-8 text) % {feature.hash_buckets}; missing -> 0"
                if feature.hash_buckets
                else "vocabulary lookup: value i of schema.json's vocabulary -> id i + 1, else 0"
            )
        else:
            entry["input"] = f"dense[:, {position - len(schema.sparse_features)}]"
            transform = "sign(x) * log1p(|x|)" if feature.transform == "log1p" else "x"
            entry["preprocessing"] = f"({transform} - {feature.mean:.6g}) / {feature.std:.6g}; missing -> 0"
        summary.append(entry)
    return summary


def decision_entry(policy: PolicyConfig) -> dict[str, Any]:
    """How `mtr score` turns the program's scores into each candidate's action probability (its last column)."""
    if policy.stochastic:
        rule = (
            f"softmax over each opportunity's scores / {policy.temperature:g}, the 'none' candidate's logit "
            f"being threshold / temperature = {policy.threshold:g} / {policy.temperature:g}"
        )
    else:
        rule = f"1 for the best candidate when its score exceeds the threshold {policy.threshold:g}, else 1 for 'none'"
    cap = "not applied (needs each user's earlier sends)" if policy.cap is not None else None
    return {"column": "action_probability", "rule": rule, "function": "mtr.scoring.policy.decide", "cap": cap}


def program_archive_problem(path: Path) -> str | None:
    """Why a `.pt2` export archive is unsafe to `torch.export.load`, or None when it holds no pickles.

    Plain tensors are stored as raw bytes; tensor subclasses, custom and opaque objects and legacy weight
    files are pickles, and sample inputs are unpickled too (so an export must store none).
    """
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        return f"not a .pt2 archive: {error}"
    try:
        with archive:
            return _pickled_entry(archive)
    except (zipfile.BadZipFile, zlib.error, OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        return f"a corrupt .pt2 archive ({type(error).__name__}: {error})"


def _pickled_entry(archive: zipfile.ZipFile) -> str | None:
    """The first entry of an export archive that `torch.export.load` would unpickle, or None."""
    broken = archive.testzip()  # every member's CRC: a flipped byte is named here, not deep in a parser
    if broken is not None:
        return f"entry {broken} fails its checksum (a corrupt archive)"
    for info in archive.infolist():
        name = info.filename
        if "/data/sample_inputs/" in name and info.file_size > 0:
            return f"entry {name} stores pickled sample inputs"
        if name.endswith(".pt") and "/data/sample_inputs/" not in name:
            return f"entry {name} is a pickled legacy file"
        if name.endswith("_config.json") and ("/data/weights/" in name or "/data/constants/" in name):
            for key, entry in json.loads(archive.read(name)).get("config", {}).items():
                if entry.get("use_pickle") or not str(entry.get("path_name", "")).startswith(("weight_", "tensor_")):
                    return f"entry {name} stores '{key}' as a pickled object"
    return None


@dataclass(frozen=True)
class VerifiedArtifact:
    """An artifact folder whose manifest, checksums and program archive passed every check.

    Attributes:
        folder: the artifact folder.
        manifest: the parsed manifest.json.
        schema: the dataset schema the program was trained on.
        operating_point: the fusion weights and policy baked into the program.
    """

    folder: Path
    manifest: dict[str, Any]
    schema: DatasetSchema
    operating_point: OperatingPoint

    @property
    def aoti_path(self) -> Path | None:
        """The AOTInductor package, if the artifact has one."""
        return self.folder / AOTI_FILE if AOTI_FILE in self.manifest["files"] else None


def verify_artifact(folder: Path | str) -> VerifiedArtifact:
    """Run every check of the module docstring; any failure raises `InputError` naming the file or field."""
    folder = Path(folder)
    manifest = _read_manifest(folder)
    check_listed_files(folder, manifest["files"])
    schema = DatasetSchema.load(folder)
    operating_point = OperatingPoint.load(folder / WEIGHTS_FILE, schema.objective_table)
    expected_fields = {
        "features": feature_summary(schema),
        "tasks": schema.task_names,
        "fusion": operating_point.to_dict()["fusion"],
        "policy": operating_point.to_dict()["policy"],
    }
    for field_name, expected in expected_fields.items():
        if manifest[field_name] != expected:
            raise InputError(f"artifact {folder}: {MANIFEST_FILE} field '{field_name}' disagrees with its files")
    return VerifiedArtifact(folder, manifest, schema, operating_point)


def check_listed_files(folder: Path, files: dict[str, str]) -> dict[str, str]:
    """Check that `folder` holds exactly the manifest's files (name -> SHA-256), each with its checksum."""
    present = {p.name for p in folder.iterdir()} - {MANIFEST_FILE, OUTPUT_MARKER}  # the marker: mtr's bookkeeping
    unexpected = sorted(present - set(files))
    if unexpected:
        raise InputError(f"artifact {folder}: file(s) {unexpected} not listed in {MANIFEST_FILE}")
    for name, expected in sorted(files.items()):
        path = folder / name
        if not path.is_file():
            raise InputError(f"artifact {folder}: file '{name}' listed in {MANIFEST_FILE} is missing")
        if sha256_file(path) != expected:
            raise InputError(f"artifact {folder}: checksum mismatch for '{name}' (the file was changed or corrupted)")
    for name in files:
        problem = program_archive_problem(folder / name) if name.endswith(".pt2") else None
        if problem:
            raise InputError(f"artifact {folder}: refusing to load '{name}': {problem}")
    return files


def read_manifest_json(folder: Path) -> dict[str, Any]:
    """The parsed manifest.json of an artifact folder, before any field is checked."""
    path = folder / MANIFEST_FILE
    if not path.is_file():
        raise InputError(f"artifact {folder}: no {MANIFEST_FILE} (is it a folder written by mtr export?)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise InputError(f"{path} is not valid JSON: {error}") from error


def _read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST_FILE
    manifest = read_manifest_json(folder)
    missing = [name for name in REQUIRED_FIELDS if name not in manifest]
    if missing:
        raise InputError(f"{path}: missing field(s) {missing}")
    if manifest["version"] != MANIFEST_VERSION:
        raise InputError(f"{path}: field 'version' is {manifest['version']!r}, expected {MANIFEST_VERSION}")
    for required in (PROGRAM_FILE, SCHEMA_FILE, WEIGHTS_FILE):
        if required not in manifest["files"]:
            raise InputError(f"{path}: field 'files' does not list '{required}'")
    return manifest
