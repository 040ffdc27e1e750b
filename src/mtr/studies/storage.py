"""Optuna storages from one string: an SQLAlchemy URL (SQLite by default) or `journal:PATH`.

Shared by every study mtr runs: hyperparameter sweeps (`mtr tune`) and Pareto studies (`mtr pareto`).

Workers never talk to each other: they share a study through its storage, which is how Optuna runs
one study from many processes or machines.
"""

from __future__ import annotations

import socket
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import sqlalchemy.exc
from optuna.storages import (
    BaseStorage,
    JournalStorage,
    RDBStorage,
    RetryFailedTrialCallback,
    RetryHeartbeatStaleTrialCallback,
)
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from mtr.errors import InputError
from mtr.io import process_running

JOURNAL_PREFIX = "journal:"
# A worker writes a heartbeat every HEARTBEAT_S while a trial runs; a RUNNING trial whose heartbeat is older
# than GRACE_S (its worker was killed) is marked FAIL and re-queued once with the same parameters.
HEARTBEAT_S = 30
GRACE_S = 120


def default_storage(root: Path) -> str:
    """The local default: an SQLite file in the sweep's folder."""
    return f"sqlite:///{Path(root) / 'study.db'}"


def open_storage(spec: str) -> BaseStorage:
    """Open the storage named by `spec`.

    Args:
        spec: "journal:PATH" for Optuna's journal file (NFS-style sharing across machines), or any
            SQLAlchemy URL: "sqlite:///runs/tune.db", "postgresql://user@host/db", ...

    Returns:
        The storage. Database storages keep worker heartbeats, so that the trial of a killed worker is
        failed and retried when a worker next starts on the study.
    """
    if spec.startswith(JOURNAL_PREFIX):
        path = Path(spec[len(JOURNAL_PREFIX) :])
        if not path.name:
            raise InputError(f"storage: '{spec}' names no journal file (use journal:PATH)")
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    if "://" not in spec:
        raise InputError(f"storage: '{spec}' is neither a database URL (sqlite:///FILE, ...) nor journal:PATH")
    if spec.startswith("sqlite:///"):
        Path(spec[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)  # SQLite creates the file only
    try:
        for attempt in range(3):
            try:
                storage = _database_storage(spec)
                if spec.startswith("sqlite:"):
                    _sqlite_write_ahead(storage)
                return storage
            except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.IntegrityError) as error:
                # Workers started together race to create a new database's tables and version row; the loser
                # retries and then finds them (Optuna's set-up is not safe against a concurrent creator).
                racing = isinstance(error, sqlalchemy.exc.IntegrityError) or "already exists" in str(error)
                if not racing or attempt == 2:
                    raise
                time.sleep(0.2 * (attempt + 1))
    except (ImportError, ValueError, optuna.exceptions.StorageInternalError) as error:
        raise InputError(f"storage: cannot open '{spec}': {error}") from error


def derived_seed(seed: int, *parts: int) -> int:
    """A 32-bit seed from a base seed and parts (worker index, trials so far) that no other combination shares
    by construction (NumPy's SeedSequence), unlike seed + index + trials."""
    return int(np.random.SeedSequence([seed, *parts]).generate_state(1)[0])


def fail_dead_local_trials(study: optuna.Study) -> None:
    """Fail (and re-queue once, as a stale heartbeat would) the RUNNING trials whose worker, recorded as the
    user attribute "worker" = host:pid (`mtr.tuning.worker.worker_id`), ran on this machine and is gone.

    A worker killed on this machine is known dead at once, so a restart does not wait GRACE_S for its heartbeat
    to go stale; a worker on another machine is judged by its heartbeat alone.
    """
    host, storage = socket.gethostname(), study._storage
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker_host, _, pid = str(trial.user_attrs.get("worker", "")).rpartition(":")
        if worker_host != host or not pid.isdigit() or process_running(int(pid)):
            continue
        if storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
            with warnings.catch_warnings():  # experimental in Optuna, as are heartbeats; it is what we want
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                RetryFailedTrialCallback(max_retry=1)(study, storage.get_trial(trial._trial_id))


def fail_stale_trials(study: optuna.Study) -> None:
    """Mark RUNNING trials of dead workers (no heartbeat for GRACE_S) as FAIL; the storage re-queues them once."""
    with warnings.catch_warnings():  # a no-op for storages without heartbeats (journal)
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def _database_storage(spec: str) -> RDBStorage:
    with warnings.catch_warnings():  # heartbeats are marked experimental in Optuna; they are what we want here
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RDBStorage(
            spec,
            heartbeat_interval=HEARTBEAT_S,
            grace_period=GRACE_S,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1),
        )


def _sqlite_write_ahead(storage: optuna.storages.RDBStorage) -> None:
    """SQLite in WAL mode with synchronous=NORMAL: one fsync per checkpoint instead of per commit.

    A trial makes a dozen commits; at about 10 ms per fsync that was 0.25 s per trial, more than the
    trial itself. WAL keeps concurrent processes on one local file safe, and a crash of the process
    loses nothing committed (a power cut may lose the last commits).
    """
    from sqlalchemy import event

    def pragmas(connection: Any, _: Any) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    event.listen(storage.engine, "connect", pragmas)
    storage.engine.dispose()  # pooled connections were opened before the listener
