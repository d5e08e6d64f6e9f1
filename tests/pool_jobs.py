"""Misbehaving parser-pool jobs and worker starts, for tests/test_pool.py. They run in the
pool's workers, which import them by name; what they react to is in the document, and the
files they write lie beside the SQLite database the pool was given (the workers' forkserver
outlives any one test, so the environment cannot tell them)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from monitor import pool
from monitor.pool import Job, prepare_job, start_worker
from monitor.prepare import Prepared


def dying(job: Job) -> Prepared:
    """Dies (as if killed for memory) on the documents titled "Local news 3" or "4"."""
    if b"Local news 3<" in job.body or b"Local news 4<" in job.body:
        os._exit(9)
    return prepare_job(job)


def slow(job: Job) -> Prepared:
    """Never finishes the document titled "Local news 3"."""
    if b"Local news 3<" in job.body:
        time.sleep(3600)
    return prepare_job(job)


def signalled(job: Job) -> Prepared:
    """Receives what systemd and Ctrl-C send the whole process group, then carries on."""
    os.kill(os.getpid(), signal.SIGTERM)
    os.kill(os.getpid(), signal.SIGINT)
    return prepare_job(job)


def beside_database(database_url: str, suffix: str) -> Path:
    return Path(database_url.removeprefix("sqlite:///")).with_suffix(suffix)


def counting(job: Job) -> Prepared:
    """Appends to DATABASE.matched how many of the document's articles were matched."""
    prepared = prepare_job(job)
    assert pool._worker is not None
    with beside_database(pool._worker.database_url, ".matched").open("a") as log:
        log.write(f"{len(prepared.articles) + len(prepared.quiet.rows)}\n")
    return prepared


def failing_once(
    topics: Path | None, threshold: float | None, database_url: str, eager: bool = True
) -> None:
    """A worker start that fails the first time (every worker started at once fails)."""
    marker = beside_database(database_url, ".started")
    if not marker.exists():
        time.sleep(0.2)  # so every first worker finds no marker
        marker.touch()
        raise RuntimeError("this worker cannot start")
    start_worker(topics, threshold, database_url, eager)


def failing(
    topics: Path | None, threshold: float | None, database_url: str, eager: bool = True
) -> None:
    raise RuntimeError("no worker can start")
