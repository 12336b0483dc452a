"""What agents do on a conversation besides answering it: assigning it to a colleague,
internal notes and labels (``POST /inbox/c/{id}/assign``, ``/note``, ``/labels``,
``/labels/remove``).

None of these messages the customer. Each is kept (the assignment and the labels in the audit
trail too) and published as an ``agent_action`` event, so every open inbox page and the Slack
card catch up."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from carebot.desk.auth import Session
from carebot.desk.roster import Roster
from carebot.events import Event, EventHub
from carebot.exceptions import StoreError
from carebot.store.assignments import Assignments
from carebot.store.labels import ConversationLabels
from carebot.store.notes import Notes

Action = Callable[[web.Request, Session, Any], Awaitable[web.StreamResponse]]
ShowError = Callable[[web.Request, Session, str], Awaitable[web.StreamResponse]]


class CaseTools:
    def __init__(
        self,
        *,
        assignments: Assignments,
        notes: Notes,
        labels: ConversationLabels,
        roster: Roster,
        events: EventHub,
        show_error: ShowError,
    ) -> None:
        self._assignments = assignments
        self._notes = notes
        self._labels = labels
        self._roster = roster
        self._events = events
        self._show_error = show_error

    def actions(self) -> dict[str, Action]:
        """The form actions by path under ``/inbox/c/{id}/``."""
        return {
            "assign": self._guarded(self._assign, "assignment"),
            "note": self._guarded(self._note, "note-form"),
            "labels": self._guarded(self._add_label, "labels"),
            "labels/remove": self._guarded(self._remove_label, "labels"),
        }

    def _guarded(self, act: Callable[[int, str, Any], Awaitable[bool]], anchor: str) -> Action:
        async def action(request: web.Request, session: Session, form: Any) -> web.StreamResponse:
            conversation_id = int(request.match_info["id"])
            try:
                changed = await act(conversation_id, session.agent.name, form)
            except StoreError as exc:
                return await self._show_error(request, session, str(exc))
            if changed:
                self._events.publish(Event("agent_action", conversation_id))
            raise web.HTTPSeeOther(f"/inbox/c/{conversation_id}#{anchor}")

        return action

    async def _assign(self, conversation_id: int, agent: str, form: Any) -> bool:
        to = str(form.get("to", "")).strip() or None
        if to is not None and to not in self._roster.agents:
            known = ", ".join(self._roster.agents) or "none configured"
            raise StoreError(
                f"No agent called {to!r} can be assigned: choose one of {known} (or nobody)."
            )
        actor = self._roster.label(agent)
        return (await self._assignments.assign(conversation_id, actor, to)).changed

    async def _note(self, conversation_id: int, agent: str, form: Any) -> bool:
        text = str(form.get("text", ""))
        await self._notes.add(conversation_id, self._roster.label(agent), text, "inbox")
        return True

    async def _add_label(self, conversation_id: int, agent: str, form: Any) -> bool:
        label = str(form.get("label", ""))
        return await self._labels.add(conversation_id, label, self._roster.label(agent))

    async def _remove_label(self, conversation_id: int, agent: str, form: Any) -> bool:
        label = str(form.get("label", ""))
        return await self._labels.remove(conversation_id, label, self._roster.label(agent))
