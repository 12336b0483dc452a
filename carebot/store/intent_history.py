"""The history of the intent files as published from the ops console: one revision per change,
with who, when, the intent, and the file's text before and after it.

The files stay the source the service loads; a revision is what it takes to show a change as a
diff and to undo it (:mod:`carebot.console.publishing` writes the files and records here).
Renames are kept too, so that past decisions, which name the id an intent had then, stay
readable: :meth:`RevisionStore.fates` says what became of an id that is no longer in the files.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select

from carebot.clock import Clock
from carebot.exceptions import StoreError
from carebot.store.database import Database
from carebot.store.tables import IntentRevision


class Action(StrEnum):
    CREATE = "create"
    EDIT = "edit"
    RENAME = "rename"
    DELETE = "delete"
    ROLLBACK = "rollback"


@dataclass(frozen=True, slots=True)
class Revision:
    id: int
    file: str
    intent_id: str | None
    previous_id: str | None
    action: Action
    author: str
    summary: str
    before: str
    after: str
    reverts_id: int | None
    created_at: datetime

    @property
    def diff(self) -> str:
        """The change as a unified diff of the file."""
        return "".join(
            difflib.unified_diff(
                self.before.splitlines(keepends=True),
                self.after.splitlines(keepends=True),
                fromfile=f"{self.file} (before)",
                tofile=f"{self.file} (after)",
            )
        )


@dataclass(frozen=True, slots=True)
class Fate:
    """What became of an intent id that past decisions name: renamed to ``renamed_to`` (the
    newest name, renames followed), or deleted (``renamed_to`` None), at ``at``."""

    renamed_to: str | None
    at: datetime

    def describe(self, old: str) -> str:
        if self.renamed_to is None:
            return f"{old} (deleted)"
        return f"{old} (now {self.renamed_to})"


class RevisionStore:
    def __init__(self, db: Database, *, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def record(
        self,
        *,
        file: str,
        action: Action,
        author: str,
        before: str,
        after: str,
        intent_id: str | None,
        previous_id: str | None = None,
        summary: str = "",
        reverts_id: int | None = None,
    ) -> Revision:
        """Keep one published change; returns it with its id."""
        row = IntentRevision(
            file=file,
            intent_id=intent_id,
            previous_id=previous_id,
            action=action.value,
            author=author,
            summary=summary,
            before=before,
            after=after,
            reverts_id=reverts_id,
            created_at=self._clock(),
        )
        async with self._db.transaction() as session:
            session.add(row)
            await session.flush()
        return _revision(row)

    async def get(self, revision_id: int) -> Revision:
        async with self._db.session() as session:
            row = await session.get(IntentRevision, revision_id)
        if row is None:
            raise StoreError(f"No intent revision {revision_id}")
        return _revision(row)

    async def recent(self, *, limit: int = 100, intent_id: str | None = None) -> list[Revision]:
        """The newest revisions first; with ``intent_id``, those of that intent (under either
        of its names)."""
        query = select(IntentRevision).order_by(IntentRevision.id.desc()).limit(limit)
        if intent_id is not None:
            query = query.where(
                (IntentRevision.intent_id == intent_id) | (IntentRevision.previous_id == intent_id)
            )
        async with self._db.session() as session:
            rows = (await session.scalars(query)).all()
        return [_revision(row) for row in rows]

    async def latest_for_file(self, file: str) -> Revision | None:
        async with self._db.session() as session:
            row = await session.scalar(
                select(IntentRevision)
                .where(IntentRevision.file == file)
                .order_by(IntentRevision.id.desc())
                .limit(1)
            )
        return None if row is None else _revision(row)

    async def reverted(self, revision_id: int) -> Revision | None:
        """The rollback that undid ``revision_id``, if one did."""
        async with self._db.session() as session:
            row = await session.scalar(
                select(IntentRevision)
                .where(IntentRevision.reverts_id == revision_id)
                .order_by(IntentRevision.id.desc())
                .limit(1)
            )
        return None if row is None else _revision(row)

    async def fates(self, current: set[str] | frozenset[str]) -> dict[str, Fate]:
        """For each id the history knows that is not in ``current`` (the ids in the files now),
        what became of it: renamed (to its newest name) or deleted."""
        async with self._db.session() as session:
            rows = (
                await session.execute(
                    select(
                        IntentRevision.previous_id,
                        IntentRevision.intent_id,
                        IntentRevision.created_at,
                    ).order_by(IntentRevision.id)
                )
            ).all()
        renamed: dict[str, tuple[str | None, datetime]] = {}
        for previous, intent, at in rows:
            if previous and previous != intent:  # renamed or deleted (a rollback included)
                renamed[previous] = (intent, at)
            if intent:  # it exists (again) under this name
                renamed.pop(intent, None)
        fates: dict[str, Fate] = {}
        for old, (new, at) in renamed.items():
            if old in current:
                continue
            seen = {old}
            while new is not None and new not in current and new in renamed and new not in seen:
                seen.add(new)
                new, at = renamed[new]
            fates[old] = Fate(new if new in current else None, at)
        return fates


def _revision(row: IntentRevision) -> Revision:
    return Revision(
        id=row.id,
        file=row.file,
        intent_id=row.intent_id,
        previous_id=row.previous_id,
        action=Action(row.action),
        author=row.author,
        summary=row.summary,
        before=row.before,
        after=row.after,
        reverts_id=row.reverts_id,
        created_at=row.created_at,
    )
