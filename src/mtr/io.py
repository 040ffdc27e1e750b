"""Atomic outputs: write to a temporary sibling, rename at the end, so that nothing is half-written."""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_output_dir(out: Path | str) -> Iterator[Path]:
    """Yield an empty temporary folder next to `out`; on success it replaces `out`.

    On any exception the temporary folder is removed and `out` is left as it was.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(out)


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    """Write `data` to `path` through a temporary file and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_json(path: Path | str, obj: Any) -> None:
    """Write `obj` as indented, key-sorted JSON, atomically; NaN and infinities (an unknown truth) become null,
    so that strict JSON readers can parse every file mtr writes."""
    atomic_write_bytes(path, (json.dumps(_finite(obj), indent=2, sort_keys=True, allow_nan=False) + "\n").encode())


def _finite(obj: Any) -> Any:
    """`obj` with every non-finite float replaced by None, through dicts, lists and tuples."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {key: _finite(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(value) for value in obj]
    return obj


def read_json(path: Path | str, missing: str | None = None) -> Any:
    """Parse a JSON file; a missing or malformed file raises `InputError` naming it.

    Args:
        path: the file.
        missing: the message when the file does not exist (default: "<path> not found").
    """
    from mtr.errors import InputError

    path = Path(path)
    if not path.exists():
        raise InputError(missing or f"{path} not found")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise InputError(f"{path} is not valid JSON: {error}") from error


def files_fingerprint(files: dict[str, Path]) -> str:
    """One SHA-256 over named files' hashes, in name order: which data a build or a run saw.

    A missing file counts as the text "missing", so that a fingerprint can still be taken and compared.
    """
    digest = hashlib.sha256()
    for name, path in sorted(files.items()):
        digest.update(f"{name}:{sha256_file(path) if Path(path).exists() else 'missing'}\n".encode())
    return digest.hexdigest()


def sha256_file(path: Path | str) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_parquet(frame: Any, path: Path | str) -> None:
    """Write a polars DataFrame to Parquet through a temporary file and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    frame.write_parquet(tmp)
    os.replace(tmp, path)


RESULTS_START, RESULTS_END = "<!-- results:start -->", "<!-- results:end -->"


def write_results_section(readme: Path | str, text: str) -> None:
    """Replace what lies between the results markers of an experiment's README with `text`, atomically."""
    readme = Path(readme)
    content = readme.read_text()
    if RESULTS_START not in content or RESULTS_END not in content:
        from mtr.errors import InputError

        raise InputError(f"{readme} has no '{RESULTS_START}' ... '{RESULTS_END}' markers")
    start, end = content.index(RESULTS_START) + len(RESULTS_START), content.index(RESULTS_END)
    atomic_write_bytes(readme, (content[:start] + "\n" + text + "\n" + content[end:]).encode())
