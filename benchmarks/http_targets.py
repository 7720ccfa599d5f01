"""Yardstick targets (`../shared/bench`): the project under another HTTP protocol than uvicorn's
default (httptools, what the yardstick's own `project` target runs).

    python3 ../shared/bench/run.py ceiling stack project benchmarks/bounded_protocol.py \
        benchmarks/h11_protocol.py --scenarios list,create

`bounded_protocol` is the command the README and the container run (`--http
web.protocol:BoundedHTTPProtocol`: httptools with bounds on the head); `h11_protocol` uvicorn's
pure-Python parser, which bounds the head too (16 KiB) but not its time, for comparison.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import project  # the yardstick's own target for this project: setup, prepare, health


def target(
    *options: str,
    description: str,
    environment: Callable[[], dict[str, str]] | None = None,
) -> dict[str, Any]:
    """A target module's attributes (`globals().update(target(...))`): the project's server with
    `options` added to its command and `environment()` to its environment."""

    def server(ctx: Any) -> dict[str, Any]:
        spec = project.server(ctx)
        spec["cmd"] = [*spec["cmd"], *options]
        if environment is not None:
            spec["env"] = {**spec["env"], **environment()}
        return spec

    return {
        "DESCRIPTION": description,
        "HEALTH_PATH": project.HEALTH_PATH,
        "setup": project.setup,
        "prepare": project.prepare,
        "server": server,
    }
