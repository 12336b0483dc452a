"""The inbox door's records, shared by every worker: failed logins in a row per agent name and
per client address, and the agents' server-side sessions.

Failures are counted with one atomic upsert per key (``INSERT ... ON CONFLICT DO UPDATE ...
RETURNING``), so two workers failing the same name at once both count. A run of failures starts
over once the last one is older than the lockout (which also ends a lock). Sessions are rows
keyed by the SHA-256 of a random id; a session is valid while it has not ended or expired.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, case, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from carebot.clock import Clock, as_utc
from carebot.store.database import Database
from carebot.store.tables import InboxSession, LoginFailure, UTCDateTime

KEY_LENGTH = 300  # the column's size: longer names are cut (they are counted all the same)


def name_key(name: str) -> str:
    return f"name:{name}"[:KEY_LENGTH]


def address_key(address: str) -> str:
    return f"address:{address}"[:KEY_LENGTH]


@dataclass(frozen=True, slots=True)
class Failures:
    """After a failure: how many in a row for the key, and until when it is locked (if it is)."""

    count: int
    locked_until: datetime | None


class LoginFailures:
    """Failed logins in a row per key (:func:`name_key`, :func:`address_key`)."""

    def __init__(
        self, db: Database, clock: Clock, *, max_failures: int, lockout: timedelta
    ) -> None:
        self._db = db
        self._clock = clock
        self._max = max_failures
        self._lockout = lockout

    async def locked_until(self, keys: Collection[str]) -> datetime | None:
        """The latest end of a lock on any of ``keys`` that has not passed yet, or None."""
        async with self._db.session() as session:
            until = await session.scalar(
                select(func.max(LoginFailure.locked_until)).where(
                    LoginFailure.key.in_(list(keys)), LoginFailure.locked_until > self._clock()
                )
            )
        return until

    async def failed(self, key: str) -> Failures:
        """Count one more failure for ``key``; locks it at the ``max_failures``-th in a row."""
        now = self._clock()
        lock_at = now + self._lockout
        table = LoginFailure.__table__.c
        # A run older than the lockout starts over (so does a lock that has passed).
        count = case((table.last_failed_at <= now - self._lockout, 1), else_=table.failures + 1)
        until = bindparam("until", lock_at, type_=UTCDateTime())
        insert = sqlite_insert if self._db.is_sqlite else pg_insert
        statement = insert(LoginFailure).values(
            key=key,
            failures=1,
            last_failed_at=now,
            locked_until=lock_at if self._max <= 1 else None,
        )
        upsert = statement.on_conflict_do_update(
            index_elements=["key"],
            set_={
                "failures": count,
                "last_failed_at": statement.excluded.last_failed_at,
                "locked_until": case((count >= self._max, until), else_=None),
            },
        ).returning(LoginFailure.failures, LoginFailure.locked_until)
        async with self._db.transaction() as session:
            failures, locked = (await session.execute(upsert)).one()
        return Failures(int(failures), _utc(locked))

    async def clear(self, keys: Collection[str]) -> None:
        """A successful login: the keys' runs of failures end."""
        async with self._db.transaction() as session:
            await session.execute(delete(LoginFailure).where(LoginFailure.key.in_(list(keys))))

    async def forget_stale(self) -> int:
        """Delete the runs whose last failure is older than the lockout (they count no more)."""
        cutoff = self._clock() - self._lockout
        async with self._db.transaction() as session:
            result = await session.execute(
                delete(LoginFailure).where(LoginFailure.last_failed_at <= cutoff)
            )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class SessionRow:
    agent: str
    csrf: str


class SessionRecords:
    """Agents' sessions, shared by every worker."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def start(self, agent: str, *, ttl: timedelta) -> tuple[str, SessionRow]:
        """A new session for ``agent``: its random id (for the cookie; only its hash is kept)
        and its row. Expired sessions are deleted on the way."""
        session_id = secrets.token_urlsafe(32)
        row = SessionRow(agent, secrets.token_urlsafe(24))
        now = self._clock()
        async with self._db.transaction() as session:
            await session.execute(delete(InboxSession).where(InboxSession.expires_at <= now))
            session.add(
                InboxSession(
                    id_hash=_digest(session_id),
                    agent=agent,
                    csrf=row.csrf,
                    created_at=now,
                    expires_at=now + ttl,
                )
            )
        return session_id, row

    async def find(self, session_id: str) -> SessionRow | None:
        """The session's row while it has neither ended nor expired."""
        async with self._db.session() as session:
            found = (
                await session.execute(
                    select(InboxSession.agent, InboxSession.csrf).where(
                        InboxSession.id_hash == _digest(session_id),
                        InboxSession.ended_at.is_(None),
                        InboxSession.expires_at > self._clock(),
                    )
                )
            ).one_or_none()
        return None if found is None else SessionRow(found.agent, found.csrf)

    async def end(self, session_id: str) -> bool:
        """End the session now (logging out); False if it had ended already."""
        return await self._end(InboxSession.id_hash == _digest(session_id)) > 0

    async def end_all_but(self, agents: Collection[str]) -> int:
        """End the open sessions of every agent not in ``agents`` (removed from the config)."""
        return await self._end(InboxSession.agent.not_in(list(agents)))

    async def _end(self, which: object) -> int:
        async with self._db.transaction() as session:
            result = await session.execute(
                update(InboxSession)
                .where(which, InboxSession.ended_at.is_(None))  # type: ignore[arg-type]
                .values(ended_at=self._clock())
            )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else as_utc(value)
