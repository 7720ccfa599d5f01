"""The owner scope: who a task statement runs for, and the condition that their token still holds.

The JWT dependency (and the MCP token verifier) turn a verified token into an `OwnerScope`; it is
the only way task statements are built, so the owner filter and the not-revoked guard always
travel together inside the statement itself, and revocation costs no round trip of its own. A
statement that finds nothing then asks `revocation_state` once, on that rare path, whether the
token was revoked (401) or the task is simply not there (404).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, exists, func, not_, select

from auth.tokens import TokenClaims
from database.types import UTCDateTime
from models import RevokedToken, SubjectRevocation

revoked_tokens = RevokedToken.__table__
subject_revocations = SubjectRevocation.__table__

# PostgreSQL NOTIFY channel of revocations; the payload is the subject whose tokens (one, or all
# issued so far) were revoked: a hint for the processes with event streams of that subject.
REVOCATIONS_CHANNEL = "todo_token_revocations"

# A token without `iat` counts as issued at the epoch: any revocation of its subject covers it.
UNKNOWN_ISSUE_TIME = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_ISSUE_TIME = datetime(9999, 12, 31, tzinfo=UTC)


class TokenRevoked(Exception):
    """The token was logged out, or its subject's tokens were revoked after it was issued."""


def _issue_time(issued_at: float | None) -> datetime:
    if issued_at is None:
        return UNKNOWN_ISSUE_TIME
    try:
        return datetime.fromtimestamp(issued_at, UTC)
    except (OverflowError, OSError, ValueError):
        return LATEST_ISSUE_TIME if issued_at > 0 else UNKNOWN_ISSUE_TIME


@dataclass(frozen=True, slots=True)
class OwnerScope:
    """The verified caller: the owner of the tasks a statement may touch, and its token.

    `legacy_revocation_key` is the key the token's revocation had before keys named the subject
    (its bare `jti`): rows written then are still honoured until they expire with their tokens.
    """

    user_id: str
    revocation_key: str
    issued_at: datetime
    legacy_revocation_key: str | None = None

    @classmethod
    def of(cls, claims: TokenClaims) -> OwnerScope:
        return cls(
            claims.sub,
            claims.revocation_key,
            _issue_time(claims.issued_at),
            claims.legacy_revocation_key,
        )

    def params(self) -> dict[str, Any]:
        """The bound values of `owner_id()` and `not_revoked()`."""
        return {
            "owner_id": self.user_id,
            "revocation_key": self.revocation_key,
            "legacy_revocation_key": self.legacy_revocation_key or self.revocation_key,
            "issued_at": self.issued_at,
        }


def owner_id() -> Any:
    """The scope's owner, as a bound parameter of the statement."""
    return bindparam("owner_id")


def not_revoked() -> ColumnElement[bool]:
    """True while the scope's token is neither logged out (under its key, or its key from
    before keys named the subject) nor older than a revocation of its subject (password
    change, account deletion). Both are primary-key lookups."""
    issued_at = bindparam("issued_at", type_=UTCDateTime())
    return and_(
        not_(
            exists().where(
                revoked_tokens.c.jti.in_(
                    [bindparam("revocation_key"), bindparam("legacy_revocation_key")]
                )
            )
        ),
        not_(
            exists().where(
                subject_revocations.c.sub == owner_id(),
                subject_revocations.c.not_before > issued_at,
            )
        ),
    )


# Built once: a statement object memoises its compiled-cache key, so each use only binds.
NOT_REVOKED = select(not_revoked().label("allowed"))


def revocation_notice(subject: Any) -> ColumnElement[Any]:
    """`pg_notify` of a revocation of `subject`'s tokens, for a revoking statement's
    `RETURNING` (PostgreSQL delivers it when the statement's transaction commits)."""
    return func.pg_notify(REVOCATIONS_CHANNEL, subject)
