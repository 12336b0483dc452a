"""The queue page's view of the conversations (``GET /inbox?view=&q=&label=&visibility=&page=``):
the tabs with their counts ("my teams'" first for an agent in a team), the rows of the chosen
view, narrowed by a search, a label and public or private, a page at a time (the waiting
handoffs by their first-response target when teams have one:
:mod:`carebot.store.inbox_views`); and what a live ``handoff`` event says to one agent (whether
it is a new handoff in their teams, for a notification)."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from carebot.desk.auth import Agent
from carebot.desk.roster import Roster
from carebot.exceptions import StoreError
from carebot.store.inbox_views import VIEWS, VISIBILITIES, InboxViews, Viewer
from carebot.store.labels import ConversationLabels, normalise_label
from carebot.store.queue import AgentQueue
from carebot.teams.targets import FirstResponseTargets

log = logging.getLogger(__name__)
VIEW_NAMES = {
    "teams": "My teams'",
    "waiting": "Waiting",
    "mine": "Mine",
    "with_agent": "With an agent",
    "resolved": "Resolved",
    "all": "All",
}
MAX_PAGE = 10_000


class QueueView:
    def __init__(
        self,
        queue: AgentQueue,
        labels: ConversationLabels,
        roster: Roster,
        targets: FirstResponseTargets | None = None,
    ) -> None:
        self._queue = queue
        self._views = InboxViews(queue.db, clock=queue.clock, targets=targets)
        self._labels = labels
        self._roster = roster

    def viewer(self, agent: Agent) -> Viewer:
        return Viewer(agent.name, agent.display_name, self._roster.teams_of(agent.name))

    async def context(self, request: web.Request, agent: Agent) -> dict[str, Any]:
        viewer = self.viewer(agent)
        tabs = [v for v in VIEWS if v != "teams" or viewer.teams]
        view = request.query.get("view") or tabs[0]
        if view not in tabs:
            raise web.HTTPBadRequest(
                text=f"Unknown view {view!r}: use one of {', '.join(tabs)}"
                + ("" if viewer.teams else " (you are in no team, so there is no 'teams' view)")
            )
        page = request.query.get("page", "1")
        if not page.isdigit() or not 1 <= int(page) <= MAX_PAGE:
            raise web.HTTPBadRequest(text=f"page must be a whole number from 1, not {page!r}")
        words = request.query.get("q", "").strip()
        label, label_error = request.query.get("label", "").strip(), None
        if label:
            try:
                label = normalise_label(label)
            except StoreError as exc:
                label, label_error = "", str(exc)
        visibility = request.query.get("visibility", "")
        if visibility not in VISIBILITIES:
            raise web.HTTPBadRequest(
                text=f"visibility must be public or private (or left out), not {visibility!r}"
            )
        shown = await self._views.page(
            view,
            viewer,
            words=words,
            label=label,
            page=int(page),
            views=tabs,
            visibility=visibility,
        )

        def url(**changes: Any) -> str:
            params = {"view": view, "q": words, "label": label, "visibility": visibility}
            params.update(changes)
            return "/inbox?" + urlencode({k: v for k, v in params.items() if v not in ("", 1)})

        return {
            "view": view,
            "tabs": [
                {"view": v, "name": VIEW_NAMES[v], "count": shown.counts[v], "url": url(view=v)}
                for v in tabs
            ],
            "rows": shown.rows,
            "page": shown.page,
            "newer_url": url(page=shown.page - 1) if shown.page > 1 else None,
            "older_url": url(page=shown.page + 1) if shown.more else None,
            "q": words,
            "label": label,
            "visibility": visibility,
            "labels_in_use": await self._labels.in_use(),
            "error": label_error,
            "roster": self._roster,
            "my_teams": sorted(self._roster.team_label(t) for t in viewer.teams if t is not None),
        }

    async def new_handoff(self, conversation_id: int, agent: str) -> dict[str, Any] | None:
        """A new handoff in ``conversation_id``: its id, team and whether it is for ``agent``
        (their teams; every team for an agent in none). None for a handoff that only changed."""
        try:
            found = await self._queue.new_handoff(conversation_id)
        except (StoreError, SQLAlchemyError) as exc:  # a notification is not worth a crash
            log.warning("Cannot read the handoff of conversation %s: %s", conversation_id, exc)
            return None
        if found is None:
            return None
        team = found["team"]
        return {
            "id": found["id"],
            "team": team,
            "team_label": self._roster.team_label(team),
            "for_me": self._roster.concerns(agent, team),
        }
