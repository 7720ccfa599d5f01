"""prometheus_client's multiprocess mode: one scrape answers the sum over every uvicorn worker.

Under `uvicorn --workers N` each worker is a process of its own, and a scrape reaches one of
them: with the default registry it would see only that worker's counts. In multiprocess mode
every process writes its values to files in `PROMETHEUS_MULTIPROC_DIR` and a scrape reads them
all (a fresh `CollectorRegistry` with a `MultiProcessCollector` per scrape).

- prometheus_client reads the variable when it is imported, so it comes from the environment
  the server is started with (never `.env`): the container's start (`deploy.start`) makes a
  fresh directory when metrics are on and there are several workers, or empties the one given,
  before uvicorn starts; by hand, `export PROMETHEUS_MULTIPROC_DIR="$(mktemp -d)"` first.
  Emptying is only safe before any worker runs: a worker cannot tell an earlier run's files from
  a sibling's that already counted, so workers never delete anything at startup.
- A worker that stops marks itself dead (its live gauges leave the sums); a scrape does the same
  for any worker that died without saying so (killed). Counters and histograms of dead workers
  stay: they are part of the totals, as Prometheus expects of counters.
- A worker of several without the directory refuses to start, saying so (never a per-worker
  registry that silently undercounts); a single process needs nothing.
- What the mode loses: the process and garbage-collector collectors (CPU, memory, file
  descriptors, GC passes) of the default registry, which only describe one process.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
# prometheus_client still honours its old lower-case name.
LEGACY_VARIABLE = "prometheus_multiproc_dir"
# The files of gauges that count only while their process lives: `gauge_livesum_<pid>.db`, ...
LIVE_GAUGE_FILE = re.compile(r"gauge_live[a-z]*_(\d+)\.db")
HOW_TO_SET_IT = (
    f'export {VARIABLE}="$(mktemp -d)" before starting uvicorn (a new, empty directory for '
    "this server), or start with `python -m deploy.start`, which makes one"
)


class MultiprocessError(RuntimeError):
    """The multiprocess directory cannot be used; the message says why and what to do."""


def multiprocess_directory(environ: Mapping[str, str] = os.environ) -> str | None:
    """The directory prometheus_client writes to, or None in single-process mode."""
    if VARIABLE in environ:
        return environ[VARIABLE]
    return environ.get(LEGACY_VARIABLE)


def check_directory(environ: Mapping[str, str] = os.environ) -> None:
    """Make the directory if it is missing; raise `MultiprocessError` when it is unusable.

    Needed before the first metric is made: prometheus_client opens its files at once."""
    path = multiprocess_directory(environ)
    if path is None:
        return
    if not path.strip():
        raise MultiprocessError(f"{VARIABLE} is set but empty: {HOW_TO_SET_IT}")
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MultiprocessError(f"{VARIABLE}={path} cannot be made: {exc.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise MultiprocessError(f"{VARIABLE}={path} is not a directory this user can write")


def ensure_directory(environ: Mapping[str, str] = os.environ) -> None:
    """`check_directory`, stopping the process with a one-line reason when it fails."""
    try:
        check_directory(environ)
    except MultiprocessError as exc:
        print(f"Configuration error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


def empty_directory(path: str) -> int:
    """Remove every metrics file from `path` (made if missing); how many were removed.

    For the container's start, before the server (and so any worker) runs."""
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    removed = 0
    for file in directory.glob("*.db"):
        file.unlink(missing_ok=True)
        removed += 1
    return removed


def started_by_process_manager() -> bool:
    """Whether this process was started by a multiprocessing parent: uvicorn's `--workers N`
    (and `--reload`) supervisor spawns the processes that serve."""
    return multiprocessing.parent_process() is not None


def per_worker_registry_problem(
    environ: Mapping[str, str] = os.environ, *, in_worker: bool | None = None
) -> str | None:
    """Why metrics cannot be served correctly in this process, or None.

    A worker of several without the multiprocess directory would answer a scrape with its own
    counts only."""
    if multiprocess_directory(environ) is not None:
        return None
    if not (started_by_process_manager() if in_worker is None else in_worker):
        return None
    return (
        f"METRICS_ENABLED=true in one of several uvicorn workers, without {VARIABLE}: each worker "
        f"would answer a scrape with its own counts only. Set it: {HOW_TO_SET_IT}"
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def forget_dead_processes(path: str) -> None:
    """Mark dead the processes whose live gauges are still there (a worker that was killed
    never marked itself): their in-flight requests and open connections leave the sums."""
    for file in Path(path).glob("gauge_live*_*.db"):
        match = LIVE_GAUGE_FILE.fullmatch(file.name)
        if match is not None and not _alive(int(match.group(1))):
            with contextlib.suppress(FileNotFoundError):
                mark_process_dead(int(match.group(1)), path)


def registry_for_scrape(environ: Mapping[str, str] = os.environ) -> CollectorRegistry:
    """What one scrape reads: every worker's files, or this process's registry."""
    path = multiprocess_directory(environ)
    if path is None:
        return REGISTRY
    forget_dead_processes(path)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=path)
    return registry


def mark_this_process_dead(environ: Mapping[str, str] = os.environ) -> None:
    """This worker stops: its live gauges no longer count (its counters still do)."""
    path = multiprocess_directory(environ)
    if path is not None:
        mark_process_dead(os.getpid(), path)
