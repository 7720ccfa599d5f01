"""How many event streams this process can hold open.

Each open stream is a socket, a file descriptor. A process that runs out of them cannot accept
any connection (a probe's, a request's) nor open one to the database: uvicorn logs "Too many
open files" and the instance looks dead while it serves its streams. So the streams stop at a
number the process can afford, and the next one is refused with a 503 (the client retries, and
a load balancer may send it to another instance) while everything else goes on.

At startup the process raises its soft descriptor limit to the hard one, as Go's runtime does
(on Debian the soft limit is 1,024 while the hard one is over 500,000; a container's are usually
equal). Unless `EVENTS_MAX_STREAMS` says otherwise, streams may then use all but
`RESERVED_DESCRIPTORS` of it: the database pool, the LISTEN connection, requests in progress,
the process's own files.
"""

from __future__ import annotations

import logging

try:
    import resource
except ImportError:  # Windows has no descriptor limits of this kind
    resource = None  # type: ignore[assignment]

logger = logging.getLogger("todo.live")

RESERVED_DESCRIPTORS = 256
# Where the platform says nothing about descriptors (no `resource`, or no limit at all).
UNBOUNDED_DEFAULT = 100_000


def raise_descriptor_limit() -> int | None:
    """Raise the soft RLIMIT_NOFILE to the hard one where allowed; the soft limit after, or
    None when there is none to read (or it is unlimited)."""
    if resource is None:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:  # macOS refuses an unlimited hard limit
            logger.debug("descriptor limit left at %s: %r", soft, exc)
    return None if soft == resource.RLIM_INFINITY else soft


def stream_capacity(configured: int | None) -> int:
    """`EVENTS_MAX_STREAMS` when set, else what the (raised) descriptor limit leaves."""
    limit = raise_descriptor_limit()
    if configured is not None:
        if limit is not None and configured > limit - RESERVED_DESCRIPTORS:
            logger.warning(
                "EVENTS_MAX_STREAMS=%d is more than the %d file descriptors this process may "
                "open leave for streams: past them it cannot accept connections",
                configured,
                limit - RESERVED_DESCRIPTORS,
            )
        return configured
    if limit is None:
        return UNBOUNDED_DEFAULT
    return max(limit - RESERVED_DESCRIPTORS, 1)
