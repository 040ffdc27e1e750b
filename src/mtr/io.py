"""Atomic outputs: write to a temporary sibling, rename at the end, so that nothing is half-written."""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mtr.errors import InputError

# Every folder an mtr command writes whole carries this file: {"command": ...}. A folder that lacks it, or names
# another command, is somebody's data, and no command replaces it without --overwrite.
OUTPUT_MARKER = ".mtr-output.json"


def check_output_dir(
    out: Path | str, command: str, overwrite: bool = False, inputs: Iterable[Path | str | None] = ()
) -> None:
    """Refuse an output folder that would destroy data the command did not create; call before any work.

    Args:
        out: the folder the command will replace.
        command: the command's name (`mtr simulate` writes "simulate"), recorded in the folder's marker.
        overwrite: replace a non-empty folder that is not this command's earlier output (never an input).
        inputs: the command's input files and folders: `out` may neither be nor contain nor sit inside one.
    """
    out = Path(out)
    resolved = out.resolve()
    for given in inputs:
        if given is None:
            continue
        source = Path(given).resolve()
        if resolved == source or source.is_relative_to(resolved) or resolved.is_relative_to(source):
            raise InputError(f"out: {out} overlaps the input {given}; write the output to another folder")
    if not out.exists():
        _check_creatable(out)
        return
    if not out.is_dir():
        raise InputError(f"out: {out} is a file, not a folder")
    if overwrite or not any(out.iterdir()):
        return
    marker = out / OUTPUT_MARKER
    written_by = None
    if marker.is_file():
        try:
            written_by = json.loads(marker.read_text()).get("command")
        except (ValueError, AttributeError):
            written_by = None
    if written_by != command:
        by = f"`mtr {written_by}`" if written_by else "no mtr command"
        raise InputError(
            f"out: {out} is not empty and was written by {by}, not by `mtr {command}`: it is kept; choose another "
            "folder, or pass --overwrite to replace it"
        )


def mark_output_dir(out: Path | str, command: str) -> Path:
    """Create `out` and mark it as `command`'s, for a command that writes its files into the folder one by one
    (each atomically) and resumes from them, such as `mtr pareto`; check it first (`check_output_dir`)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / OUTPUT_MARKER, (json.dumps({"command": command}) + "\n").encode())
    return out


def _check_creatable(out: Path) -> None:
    """The nearest existing ancestor of `out` is a folder this process may write in (not /dev/null, not /proc)."""
    ancestor = out.absolute().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise InputError(f"out: {out} cannot be created: {ancestor} is a file, not a folder")
    try:  # a probe, not a permission bit: root may "write" /proc until it tries
        os.rmdir(tempfile.mkdtemp(prefix=".mtr-probe-", dir=ancestor))
    except OSError as error:
        raise InputError(f"out: {out} cannot be created: {ancestor} is not writable ({error.strerror})") from None


@contextmanager
def atomic_output_dir(
    out: Path | str, command: str, overwrite: bool = False, inputs: Iterable[Path | str | None] = ()
) -> Iterator[Path]:
    """Yield an empty temporary folder next to `out`; on success it replaces `out`, marked as `command`'s.

    `out` is checked first (`check_output_dir`). On any exception the temporary folder is removed and `out` is
    left as it was; temporary folders of killed runs (their process gone) are removed on the next run.
    """
    check_output_dir(out, command, overwrite, inputs)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_orphans(out)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        (tmp / OUTPUT_MARKER).write_text(json.dumps({"command": command}) + "\n")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(out)


def remove_orphans(out: Path) -> None:
    """Remove `out`'s temporary siblings (.NAME.tmp-PID-*, .NAME.old-PID-*) whose process no longer runs."""
    for sibling in out.parent.glob(f".{out.name}.*-*-*"):
        kind, _, rest = sibling.name.removeprefix(f".{out.name}.").partition("-")
        pid = rest.partition("-")[0]
        if kind in ("tmp", "old") and pid.isdigit() and not process_running(int(pid)):
            shutil.rmtree(sibling, ignore_errors=True)


def process_running(pid: int) -> bool:
    """Whether a process of this machine with `pid` exists."""
    try:
        os.kill(pid, 0)  # signal 0 checks only; PermissionError (someone else's process) means it exists
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


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
