"""Conditional requests (RFC 9110 §8.8.3, §13): entity tags, If-Match and If-None-Match.

A task's tag is strong and names its id and version (`"<id>.<version>"`, the owner's change
counter at its latest change), so `If-Match` becomes a `version IN (...)` condition of the write
statement itself: never read-then-write. A list's (and the stats') tag digests the owner's
state, the query and the body, so any change of the owner's tasks changes it, and so does the
passing of time where the answer depends on it (overdue).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Annotated

from fastapi import Header
from pydantic import WithJsonSchema

from database.types import BIGINT_MAX

# RFC 9110 §8.8.3: entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE, etagc = %x21 / %x23-7E / obs-text.
ENTITY_TAG = re.compile(r'\s*(W/)?"([\x21\x23-\x7e\x80-\xff]*)"\s*')
TASK_TAG = re.compile(r"(\d{1,10})\.(\d{1,19})")
# The documented syntax of If-Match / If-None-Match: `*`, or a comma-separated list of entity tags.
ENTITY_TAG_LIST_FORMAT = "entity-tag-list"
ENTITY_TAG_LIST_PATTERN = r'^\s*(\*|(W/)?"[\x21\x23-\x7e]*"(\s*,\s*(W/)?"[\x21\x23-\x7e]*")*)\s*$'
# A version no task has: a tag this API did not issue can never match.
NO_VERSION = -1
CACHE_CONTROL = "private, no-cache"
MAX_HEADER_LENGTH = 4096


@dataclass(frozen=True, slots=True)
class EntityTag:
    opaque: str
    weak: bool = False

    def __str__(self) -> str:
        return f'{"W/" if self.weak else ""}"{self.opaque}"'


@dataclass(frozen=True, slots=True)
class TagList:
    """A parsed If-Match / If-None-Match value: `*`, or entity tags (malformed members, which
    cannot match anything, are dropped)."""

    any: bool
    tags: tuple[EntityTag, ...] = ()

    @classmethod
    def parse(cls, value: str) -> TagList:
        if value.strip() == "*":
            return cls(any=True)
        tags = []
        for member in _members(value):
            match = ENTITY_TAG.fullmatch(member)
            if match is not None:
                tags.append(EntityTag(match.group(2), weak=match.group(1) is not None))
        return cls(any=False, tags=tuple(tags))

    def matches_weakly(self, tag: EntityTag) -> bool:
        """If-None-Match: weak comparison (W/"x" matches "x")."""
        return self.any or any(member.opaque == tag.opaque for member in self.tags)

    def task_versions(self, task_id: int) -> tuple[int, ...]:
        """If-Match on a task: the versions named by strong tags of this task (weak tags never
        match, nor versions past the 64-bit column); `(NO_VERSION,)` when none can match, so
        the write answers 412 (or 404)."""
        versions = []
        for member in self.tags:
            match = TASK_TAG.fullmatch(member.opaque)
            if not member.weak and match is not None and int(match.group(1)) == task_id:
                version = int(match.group(2))
                if version <= BIGINT_MAX:
                    versions.append(version)
        return tuple(versions) or (NO_VERSION,)


def _members(value: str) -> list[str]:
    """Split a list of entity tags on the commas between them (not those inside quotes)."""
    members, current, quoted = [], [], False
    for character in value:
        if character == '"':
            quoted = not quoted
        if character == "," and not quoted:
            members.append("".join(current))
            current = []
        else:
            current.append(character)
    members.append("".join(current))
    return [member for member in members if member.strip()]


def task_tag(task_id: int, version: int) -> EntityTag:
    return EntityTag(f"{task_id}.{version}")


def digest_tag(*parts: bytes | str) -> EntityTag:
    """A strong tag digesting what a collection's answer depends on."""
    digest = hashlib.blake2b(digest_size=16)
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return EntityTag(digest.hexdigest())


# Documented as a string (a header is never null), in the syntax the parser reads.
ENTITY_TAG_LIST_SCHEMA = WithJsonSchema(
    {
        "type": "string",
        "format": ENTITY_TAG_LIST_FORMAT,
        "pattern": ENTITY_TAG_LIST_PATTERN,
        "maxLength": MAX_HEADER_LENGTH,
    }
)
IfMatch = Annotated[
    str | None,
    ENTITY_TAG_LIST_SCHEMA,
    Header(
        description="Only change the task if its current `ETag` is one of these (strong "
        "comparison); otherwise 412 with the current `ETag`.",
        max_length=MAX_HEADER_LENGTH,
    ),
]
IfNoneMatch = Annotated[
    str | None,
    ENTITY_TAG_LIST_SCHEMA,
    Header(
        description="Answer 304 without a body when the current `ETag` is one of these.",
        max_length=MAX_HEADER_LENGTH,
    ),
]
