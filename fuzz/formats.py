"""Generators for the string formats of our own that the OpenAPI document uses.

`format: password` (schemas.py) is a password the server accepts: no NUL, at most 72 bytes in
UTF-8, and as many characters as the length keywords beside it say (8 or more for a new one).
The length keywords count characters and cannot say bytes, so the format carries that rule.
`format: entity-tag-list` (If-Match, If-None-Match) is what clients send: `*` or entity tags.
"""

from __future__ import annotations

from hypothesis import strategies as st

from routes.conditional import ENTITY_TAG_LIST_FORMAT
from schemas import PASSWORD_FORMAT, PASSWORD_MAX_BYTES, PASSWORD_MIN_LENGTH

# Any character UTF-8 can encode (so no lone surrogates), except NUL.
PASSWORD_CHARACTERS = st.characters(codec="utf-8", exclude_characters="\x00")


def _within_bytes(value: str) -> str:
    """The longest prefix of `value` that fits in PASSWORD_MAX_BYTES (at least 18 characters
    of any kind fit, so the minimum length survives)."""
    while len(value.encode("utf-8")) > PASSWORD_MAX_BYTES:
        value = value[:-1]
    return value


def password_values() -> st.SearchStrategy[str]:
    return st.text(
        PASSWORD_CHARACTERS, min_size=PASSWORD_MIN_LENGTH, max_size=PASSWORD_MAX_BYTES
    ).map(_within_bytes)


def entity_tag_lists() -> st.SearchStrategy[str]:
    """If-Match / If-None-Match as clients send them: `*`, or tags of tasks (`"<id>.<version>"`,
    small numbers, so some name a real task at its current version), strong or weak."""
    task_tag = st.builds(
        lambda weak, task_id, version: f'{"W/" if weak else ""}"{task_id}.{version}"',
        st.booleans(),
        st.integers(1, 30),
        st.integers(1, 300),
    )
    return st.one_of(st.just("*"), st.lists(task_tag, min_size=1, max_size=3).map(", ".join))


FORMATS = {PASSWORD_FORMAT: password_values, ENTITY_TAG_LIST_FORMAT: entity_tag_lists}
