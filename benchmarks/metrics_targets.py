"""Yardstick targets (`../shared/bench`): the project with observability switched on, against
the yardstick's own `project` target (everything off, the default) in the same run:

    python3 ../shared/bench/run.py project benchmarks/metrics_on.py \
        benchmarks/metrics_multiprocess.py --scenarios list,create

`metrics_on`: `METRICS_ENABLED=true`, one process (the default registry, values in memory);
`metrics_multiprocess`: the same with `PROMETHEUS_MULTIPROC_DIR` (every value written to the
shared files, as under `--workers N`), so its cost is measured too.
"""

from __future__ import annotations

import tempfile
from typing import Any

import http_targets  # beside this file, as the yardstick loads targets


def target(description: str, *, multiprocess: bool = False) -> dict[str, Any]:
    """A target module's attributes (`globals().update(target(...))`)."""

    def environment() -> dict[str, str]:
        switched_on = {"METRICS_ENABLED": "true"}
        if multiprocess:
            switched_on["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="bench-metrics-")
        return switched_on

    return http_targets.target(description=description, environment=environment)
