"""What a task operation can refuse, free of HTTP (routes map these to 404 and 412)."""

from __future__ import annotations


class TaskNotFound(Exception):
    """No such task for this owner (another owner's task is indistinguishable from none)."""


class VersionMismatch(Exception):
    """The task exists but is no longer at the version the caller expected."""

    def __init__(self, current_version: int) -> None:
        super().__init__(current_version)
        self.current_version = current_version


class CursorExpired(Exception):
    """The change log no longer reaches back to the cursor (older than its retention)."""
