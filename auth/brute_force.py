"""Brute-force protection for everything that checks a password or creates an account.

Failed password checks are counted per email and per client address (login, password change and
account deletion share the counters, so a stolen token cannot be used to guess the password
either). Once a limit is used up, attempts get 429 with `Retry-After` before bcrypt runs. A
successful check resets the email's counter; the address counter only expires. Signups are
counted per address, every attempt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from sqlmodel.ext.asyncio.session import AsyncSession

from auth.passwords import PasswordHasher
from auth.rate_limit import Limit, ensure_within, hit, hit_or_refuse, limit_key, reset
from observability.metrics import LOGIN_FAILURES
from settings import Settings
from web.client_address import client_address


@dataclass(frozen=True, slots=True)
class CredentialGuard:
    """The limits that apply to one request, from the settings and the client's address."""

    settings: Settings
    address: str

    def email_limit(self, email: str) -> Limit:
        return Limit(
            limit_key("login-email", email.lower()),
            self.settings.login_max_failures_per_email,
            self.settings.login_failure_window_seconds,
        )

    def address_limit(self) -> Limit:
        return Limit(
            limit_key("login-address", self.address),
            self.settings.login_max_failures_per_address,
            self.settings.login_failure_window_seconds,
        )

    def signup_limit(self) -> Limit:
        return Limit(
            limit_key("signup-address", self.address),
            self.settings.signup_max_per_address,
            self.settings.signup_window_seconds,
        )

    @property
    def longest_window(self) -> int:
        return max(self.settings.login_failure_window_seconds, self.settings.signup_window_seconds)

    async def count_signup(self, session: AsyncSession) -> None:
        """Count a signup attempt (kept even if the signup fails); 429 over the limit."""
        await hit_or_refuse(session, self.signup_limit())
        await session.commit()

    async def check_password(
        self,
        session: AsyncSession,
        hasher: PasswordHasher,
        email: str,
        password: str,
        password_hash: str | None,
        failure: HTTPException,
    ) -> None:
        """Verify `password` (against a dummy hash when there is no account) or raise `failure`.

        The limits are checked before bcrypt, and the session's transaction is committed before
        hashing so no connection sits idle in a transaction during the slow part.
        """
        limits = (self.email_limit(email), self.address_limit())
        await ensure_within(session, *limits)
        await session.commit()
        if password_hash is None:
            await hasher.burn_verify(password)
            valid = False
        else:
            valid = await hasher.verify(password, password_hash)
        if not valid:
            LOGIN_FAILURES.labels(
                "unknown_email" if password_hash is None else "wrong_password"
            ).inc()
            for limit in limits:
                await hit(session, limit)
            # Raising rolls the request's session back: keep the failures.
            await session.commit()
            raise failure
        await reset(session, limits[0].key, stale_after_seconds=self.longest_window)


async def get_credential_guard(request: Request) -> CredentialGuard:
    settings: Settings = request.app.state.settings
    return CredentialGuard(settings, client_address(request, settings.trusted_proxies))


CredentialGuardDep = Annotated[CredentialGuard, Depends(get_credential_guard)]
