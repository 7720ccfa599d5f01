"""Event-stream tickets: a browser's EventSource cannot send `Authorization`, so it asks first
(`POST …/events/tickets`, with its token) and opens the stream with `?ticket=`.

A ticket is single use, lives 60 seconds, is kept in the database (any instance redeems it) only
as a SHA-256 digest, and is bound to the token that asked for it: the stream it opens is refused
or closed as soon as that token is revoked or expires. One token gets at most
`EVENTS_MAX_TICKETS_PER_TOKEN` tickets a minute (a database counter, shared by every instance),
then 429 with `Retry-After`.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, select

from auth.rate_limit import Limit, count_or_refuse, limit_key
from auth.scope import OwnerScope, TokenRevoked, not_revoked, owner_id
from database.types import UTCDateTime, utcnow
from db import Database
from models import event_tickets

TICKET_LIFETIME = timedelta(seconds=60)
TICKET_BYTES = 32
TICKET_WINDOW_SECONDS = 60


@dataclass(frozen=True, slots=True)
class RedeemedTicket:
    scope: OwnerScope
    token_expires_at: datetime


def _digest(ticket: str) -> str:
    return hashlib.sha256(ticket.encode()).hexdigest()


def _stamp(name: str) -> object:
    return bindparam(name, type_=UTCDateTime())


ISSUE = (
    event_tickets.insert()
    .from_select(
        [
            "ticket_hash",
            "user_id",
            "revocation_key",
            "issued_at",
            "token_expires_at",
            "expires_at",
        ],
        select(
            bindparam("ticket_hash"),
            owner_id(),
            bindparam("revocation_key"),
            _stamp("issued_at"),
            _stamp("token_expires_at"),
            _stamp("expires_at"),
        ).where(not_revoked()),
    )
    .returning(event_tickets.c.ticket_hash)
)
REDEEM = (
    event_tickets.delete()
    .where(event_tickets.c.ticket_hash == bindparam("ticket_hash"))
    .returning(
        event_tickets.c.user_id,
        event_tickets.c.revocation_key,
        event_tickets.c.issued_at,
        event_tickets.c.token_expires_at,
        event_tickets.c.expires_at,
    )
)


def ticket_limit(scope: OwnerScope, max_per_minute: int) -> Limit:
    """The token's ticket counter (keyed by its revocation key: subject and `jti`)."""
    return Limit(limit_key("ticket", scope.revocation_key), max_per_minute, TICKET_WINDOW_SECONDS)


async def issue_ticket(
    db: Database, scope: OwnerScope, token_expires_at: datetime, max_per_minute: int
) -> str:
    """A new ticket for the scope's token: its count (429 past the limit), then the ticket
    (refused if the token is revoked); one statement each."""
    async with db.statement() as connection:
        await count_or_refuse(connection, ticket_limit(scope, max_per_minute), "event tickets")
    ticket = secrets.token_urlsafe(TICKET_BYTES)
    params = {
        **scope.params(),
        "ticket_hash": _digest(ticket),
        "token_expires_at": token_expires_at,
        "expires_at": min(utcnow() + TICKET_LIFETIME, token_expires_at),
    }
    async with db.statement() as connection:
        issued = (await connection.execute(ISSUE, params)).first()
    if issued is None:
        raise TokenRevoked
    return ticket


async def redeem_ticket(db: Database, ticket: str) -> RedeemedTicket | None:
    """The ticket's scope, spending it; None when it is unknown, spent or expired."""
    async with db.statement() as connection:
        row = (await connection.execute(REDEEM, {"ticket_hash": _digest(ticket)})).first()
    if row is None or row.expires_at <= utcnow():
        return None
    scope = OwnerScope(row.user_id, row.revocation_key, row.issued_at)
    return RedeemedTicket(scope, row.token_expires_at)
