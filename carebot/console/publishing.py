"""Publishing intent edits: the file written atomically (the live reload picks it up), the
change kept as a revision with who and when, and a revision rolled back in one step.

A rollback puts the file back as it was before the revision. It is refused when the file has
changed since (a later revision, or an edit by hand): the newest change is rolled back first,
so that no one's later edit is lost silently. The restored folder is checked like any save.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from carebot.console.intent_files import Edit, IntentEditError, IntentFile, IntentFiles
from carebot.store.intent_history import Action, Revision, RevisionStore

T = TypeVar("T")
InThread = Callable[[Callable[[], T]], Awaitable[T]]


class RollbackError(IntentEditError):
    """A rollback that was not done (the file untouched)."""


class Publisher:
    def __init__(
        self,
        *,
        files: IntentFiles,
        revisions: RevisionStore,
        in_thread: InThread[Edit] | None = None,
    ) -> None:
        """``in_thread`` runs the file work (the checks may encode new examples): the model's
        thread in the service."""
        self.files = files
        self.revisions = revisions
        self._in_thread: InThread[Edit] = in_thread or asyncio.to_thread
        self._lock = asyncio.Lock()  # one publish at a time in this process

    async def publish(
        self,
        edit: Edit,
        *,
        author: str,
        action: Action,
        intent_id: str | None,
        previous_id: str | None,
        summary: str = "",
    ) -> Revision:
        """Write ``edit`` (refused if its file changed since it was read) and keep it as a
        revision. ``intent_id`` and ``previous_id``: the intent's id after and before."""
        async with self._lock:
            await self._in_thread(lambda: self.files.write(edit))
            return await self.revisions.record(
                file=self.files.name_of(edit.base.path),
                action=action,
                author=author,
                before=edit.base.text,
                after=edit.text,
                intent_id=intent_id,
                previous_id=previous_id,
                summary=summary,
            )

    async def rollback(self, revision_id: int, *, author: str) -> Revision:
        """Put the file of revision ``revision_id`` back as it was before it."""
        revision = await self.revisions.get(revision_id)
        async with self._lock:  # two rollbacks of one revision at once: the second is refused
            undone = await self.revisions.reverted(revision_id)
            if undone is not None:
                raise RollbackError(
                    f"Revision {revision_id} was already rolled back by {undone.author} "
                    f"(revision {undone.id})"
                )
            base = self.files.read(revision.file)
            if base.text != revision.after:
                latest = await self.revisions.latest_for_file(revision.file)
                newer = "an edit outside the console"
                if latest is not None and latest.id != revision_id:
                    newer = f"revision {latest.id} by {latest.author}"
                    if base.text != latest.after:  # and by hand after it
                        newer += ", and an edit outside the console after it"
                raise RollbackError(
                    f"{revision.file} has changed since revision {revision_id} ({newer}); "
                    "roll back the newest change first, so that no later edit is lost"
                )
            edit = await self._in_thread(lambda: self._restore(base, revision.before))
            await self._in_thread(lambda: self.files.write(edit))
            summary = f"rollback of revision {revision.id}"
            if revision.summary:
                summary += f" ({revision.summary})"
            return await self.revisions.record(
                file=revision.file,
                action=Action.ROLLBACK,
                author=author,
                before=revision.after,
                after=revision.before,
                intent_id=revision.previous_id,
                previous_id=revision.intent_id,
                summary=summary,
                reverts_id=revision.id,
            )

    def _restore(self, base: IntentFile, text: str) -> Edit:
        try:
            return self.files.plan_restore(base, text)
        except IntentEditError as exc:
            raise RollbackError(str(exc), exc.problems) from exc
