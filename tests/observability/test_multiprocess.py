"""The multiprocess directory: checked before the first metric, emptied only before workers run,
a worker of several refusing to start without it, and the live gauges of dead processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from observability.multiprocess import (
    MultiprocessError,
    check_directory,
    empty_directory,
    forget_dead_processes,
    per_worker_registry_problem,
    registry_for_scrape,
)


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


class TestTheDirectory:
    def test_single_process_needs_none(self) -> None:
        check_directory({})
        assert registry_for_scrape({}) is REGISTRY

    def test_a_missing_one_is_made(self, tmp_path: Path) -> None:
        check_directory({"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "new" / "metrics")})
        assert (tmp_path / "new" / "metrics").is_dir()

    def test_an_empty_value_is_refused(self) -> None:
        with pytest.raises(MultiprocessError, match="set but empty"):
            check_directory({"PROMETHEUS_MULTIPROC_DIR": " "})

    def test_a_file_is_refused(self, tmp_path: Path) -> None:
        (tmp_path / "file").write_text("")
        with pytest.raises(MultiprocessError, match="cannot be made"):
            check_directory({"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "file")})

    def test_an_unusable_one_stops_the_process_saying_why(self, tmp_path: Path) -> None:
        (tmp_path / "file").write_text("")
        result = subprocess.run(
            [sys.executable, "-c", "import observability.metrics"],
            cwd=Path(__file__).resolve().parents[2],
            env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "file")},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 1
        assert result.stderr.startswith("Configuration error: PROMETHEUS_MULTIPROC_DIR=")

    def test_emptying_removes_only_metrics_files(self, tmp_path: Path) -> None:
        for name in ("counter_1.db", "histogram_2.db", "gauge_livesum_3.db", "notes.txt"):
            (tmp_path / name).write_text("")
        assert empty_directory(str(tmp_path)) == 3
        assert [path.name for path in tmp_path.iterdir()] == ["notes.txt"]


class TestSeveralWorkers:
    def test_a_worker_without_the_directory_is_refused_with_the_fix(self) -> None:
        problem = per_worker_registry_problem({}, in_worker=True)
        assert problem is not None
        assert 'export PROMETHEUS_MULTIPROC_DIR="$(mktemp -d)"' in problem
        assert "python -m deploy.start" in problem

    def test_with_the_directory_or_alone_it_is_fine(self, tmp_path: Path) -> None:
        assert (
            per_worker_registry_problem({"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}, in_worker=True)
            is None
        )
        assert per_worker_registry_problem({}, in_worker=False) is None
        assert per_worker_registry_problem({}) is None  # the test process has no such parent

    def test_the_live_gauges_of_dead_processes_leave_the_sums(self, tmp_path: Path) -> None:
        dead, alive = dead_pid(), os.getpid()
        for pid in (dead, alive):
            for kind in ("gauge_livesum", "counter"):
                (tmp_path / f"{kind}_{pid}.db").write_bytes(b"")
        forget_dead_processes(str(tmp_path))
        assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
            [f"counter_{dead}.db", f"counter_{alive}.db", f"gauge_livesum_{alive}.db"]
        )
