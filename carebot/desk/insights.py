"""The care lead's numbers at ``/insights``, beside the inbox and behind the same login: the
headline figures against the previous period, weekly charts, CSAT bot vs human, top intents,
handoff reasons and the unanswered topics. Only agents with the ``lead`` role may open it (it
lists customers' conversations); others get 403.

- ``GET /insights?since=&until=&channel=&team=&label=&visibility=``: the dashboard (default:
  the last 28 days, every channel and team, public and private); the human figures by team,
  the share answered within target, the headline figures of the public and of the private
  conversations, and what came in public and what was done with it.
- ``GET /insights/conversations?metric=<key>`` (or ``topic=<keywords>``): the conversations
  behind a number, each linking to the inbox.
- ``GET /insights/export.csv``: one row per conversation of the period (``metric``/``topic``
  narrow it to a number's), for joining to CRM data.

The figures come from injected callables (the same ones ``carebot report`` and ``/metrics``
use), so the page never computes a metric itself. The charts use Chart.js 4.6.1, vendored as
``static/chart.umd.min.js`` from the npm package ``chart.js@4.6.1`` (``dist/chart.umd.min.js``,
MIT, ``static/chart.js.LICENSE.md``): no CDN, no build step.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import quote
from zoneinfo import ZoneInfo

from aiohttp import web

from carebot.clock import Clock
from carebot.desk import insight_format as fmt
from carebot.desk.auth import Session, Sessions
from carebot.desk.insight_charts import WeeklyCharts
from carebot.desk.insight_filters import VISIBILITIES, FilterError, Filters
from carebot.desk.insight_public import public_rows, visibility_rows
from carebot.desk.insight_view import Dashboard, describe, lookup, topic_ref, topic_view
from carebot.desk.pages import Pages
from carebot.exceptions import CarebotError
from carebot.insight.export import conversation_csv
from carebot.insight.report import ConversationRow, Period, Report, Topic

log = logging.getLogger(__name__)
LISTED = 500  # conversations listed on a page (the export has them all)
View = Callable[[web.Request, Session, Filters], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class InsightSources:
    """Where the numbers come from: a period's :class:`Report`, its conversations one row
    each, and the topics of what the bot did not answer in it."""

    report: Callable[[Period], Awaitable[Report]]
    conversations: Callable[[Period], Awaitable[list[ConversationRow]]]
    topics: Callable[[Period], Awaitable[list[Topic]]]


class InsightPages:
    """``/insights`` and its conversation lists and export, for agents with the lead role."""

    def __init__(
        self,
        *,
        sessions: Sessions,
        sources: InsightSources,
        zone: ZoneInfo,
        clock: Clock,
        channels: Callable[[], Iterable[str]],
        intent_title: Callable[[str], str] = str,
        teams: Callable[[], Iterable[tuple[str, str]]] | None = None,
    ) -> None:
        """``teams``: the configured teams as (name, display name), for the team filter
        (None: the teams of the report shown)."""
        self._sessions = sessions
        self._sources = sources
        self._zone = zone
        self._clock = clock
        self._channels = channels
        self._intent_title = intent_title
        self._teams = teams
        self._pages = Pages()

    def mount(self, app: web.Application) -> None:
        """Add the routes (the inbox serves the static files)."""
        app.router.add_get("/insights", self._lead(self._dashboard))
        app.router.add_get("/insights/conversations", self._lead(self._conversations))
        app.router.add_get("/insights/export.csv", self._lead(self._export))

    def _lead(self, view: View) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            session = await self._sessions.read(request)
            if session is None:
                raise web.HTTPSeeOther(f"/inbox/login?next={quote(request.path_qs)}")
            if not session.agent.can("lead"):
                return self._problem(
                    session,
                    403,
                    "Insights are for care leads",
                    f"You are signed in as {session.agent.name}, who does not have the lead "
                    "role. The numbers list customers' conversations, so only leads see them: "
                    'ask an admin to add "lead" to your roles ([[inbox.agents]] roles in '
                    "config.toml).",
                )
            today = self._clock().astimezone(self._zone).date()
            try:
                filters = Filters.parse(request.query, today=today)
            except FilterError as exc:
                return self._problem(session, 400, "These filters cannot be used", f"{exc}.")
            unknown = self._unknown_team(filters.team)
            if unknown:
                return self._problem(session, 400, "These filters cannot be used", unknown)
            return await view(request, session, filters)

        return handler

    def _unknown_team(self, team: str | None) -> str | None:
        """Why ``team`` cannot be shown (not a configured team), or None."""
        if team is None or self._teams is None:
            return None
        names = [name for name, _ in self._teams()]
        if team in names:
            return None
        return (
            f"There is no team {team!r}: the teams are {', '.join(names)} ([[teams]] name in "
            "the config file)."
        )

    def _team_options(self, report: Report, filters: Filters) -> list[tuple[str, str]]:
        """The team filter's options: the configured teams (or the report's)."""
        if self._teams is not None:
            return list(self._teams())
        found = [(row.team, row.label) for row in report.teams]
        if filters.team and filters.team not in {name for name, _ in found}:
            found.append((filters.team, filters.team))
        return found

    # --- the dashboard -------------------------------------------------------------------

    async def _dashboard(
        self, request: web.Request, session: Session, filters: Filters
    ) -> web.StreamResponse:
        period = filters.period(self._zone)
        report, previous, (topics, topics_error) = await asyncio.gather(
            self._sources.report(period),
            self._sources.report(period.previous()),
            self._topics(period),
        )
        link = _linker(filters)
        dashboard = Dashboard(report, previous, link, self._intent_title)
        today = self._clock().astimezone(self._zone).date()
        return self._pages.render(
            "insights.html",
            session,
            title="Insights",
            filters=filters,
            previous=fmt.days(filters.previous().since, filters.previous().until),
            presets=[(days, filters.last(days, today)) for days in (7, 28, 90)],
            channels=sorted({*self._channels(), *([filters.channel] if filters.channel else [])}),
            generated=fmt.moment(report.generated_at, self._zone),
            zone=self._zone.key,
            notes=report.notes,
            cards=dashboard.cards(),
            charts=WeeklyCharts(report, link).charts(),
            intents=dashboard.intents(),
            reasons=dashboard.handoff_reasons(),
            teams=dashboard.teams(),
            team_options=self._team_options(report, filters),
            within_target=dashboard.within_target(),
            visibilities=visibility_rows(dashboard),
            visibility_options=VISIBILITIES,
            public_rows=public_rows(dashboard),
            topics=[
                topic_view(t, link_topic(filters, t), self._intent_title, self._zone)
                for t in topics
            ],
            topics_error=topics_error,
            export=f"/insights/export.csv?{filters.query()}",
            period_since=period.since.isoformat(),
            period_until=period.until.isoformat(),
            notice=request.query.get("notice", ""),
        )

    async def _topics(self, period: Period) -> tuple[list[Topic], str | None]:
        """The topics, or why there are none: a failure there leaves the numbers standing."""
        try:
            return await self._sources.topics(period), None
        except CarebotError as exc:
            log.warning("Unanswered topics could not be grouped: %s", exc)
            return [], str(exc)

    # --- the conversations behind a number -----------------------------------------------

    async def _conversations(
        self, request: web.Request, session: Session, filters: Filters
    ) -> web.StreamResponse:
        period = filters.period(self._zone)
        try:
            what, ids, narrow = await self._behind(request, period)
        except _Unknown as exc:
            return self._problem(session, 404, "Nothing to list", str(exc))
        found = {row.id: row for row in await self._sources.conversations(period)}
        rows = sorted((found[i] for i in set(ids) if i in found), key=lambda r: (r.started, r.id))
        return self._pages.render(
            "insight_conversations.html",
            session,
            title=what,
            what=what,
            filters=filters,
            total=len(set(ids)),
            rows=[_row_view(row, self._zone, self._intent_title) for row in rows[:LISTED]],
            elsewhere=sorted(set(ids) - set(found)),
            listed=LISTED,
            zone=self._zone.key,
            back=f"/insights?{filters.query()}",
            export=f"/insights/export.csv?{filters.query(**narrow)}",
        )

    async def _behind(
        self, request: web.Request, period: Period
    ) -> tuple[str, Sequence[int], dict[str, str]]:
        """What a number is, the conversations behind it, and the query naming it."""
        metric, topic = request.query.get("metric", ""), request.query.get("topic", "")
        if metric:
            figure = lookup(await self._sources.report(period), metric)
            if figure is None:
                raise _Unknown(
                    f"There is no figure {metric!r} in this period's report: follow a number's "
                    "link on the insights page."
                )
            return describe(metric, self._intent_title), figure.ids, {"metric": metric}
        if topic:
            for candidate in await self._sources.topics(period):
                if topic_ref(candidate) == topic:
                    words = ", ".join(candidate.keywords)
                    return (
                        f"Unanswered topic: {words}",
                        candidate.conversation_ids,
                        {"topic": topic},
                    )
            raise _Unknown(
                f"No unanswered topic of this period has the keywords {topic!r} any more (topics "
                "are regrouped as new messages come in): open it again from the insights page."
            )
        raise _Unknown("Say which number to list: ?metric=<key> or ?topic=<keywords>.")

    # --- the export ----------------------------------------------------------------------

    async def _export(
        self, request: web.Request, session: Session, filters: Filters
    ) -> web.StreamResponse:
        period = filters.period(self._zone)
        rows = await self._sources.conversations(period)
        name = f"carebot-conversations-{filters.since.isoformat()}-to-{filters.until.isoformat()}"
        if filters.channel:
            name += f"-{filters.channel}"
        if filters.team:
            name += f"-team-{filters.team}"
        if filters.visibility:
            name += f"-{filters.visibility}"
        if "metric" in request.query or "topic" in request.query:
            try:
                _, ids, _ = await self._behind(request, period)
            except _Unknown as exc:
                raise web.HTTPNotFound(text=str(exc)) from None
            wanted = set(ids)
            rows = [row for row in rows if row.id in wanted]
        log.info("%s exported %d conversations (%s)", session.agent.name, len(rows), name)
        return web.Response(
            body=conversation_csv(rows).encode(),
            content_type="text/csv",
            charset="utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="{name}.csv"',
                "Cache-Control": "no-store",
            },
        )

    # --- rendering -----------------------------------------------------------------------

    def _problem(self, session: Session, status: int, title: str, message: str) -> web.Response:
        return self._pages.render(
            "insight_problem.html", session, status=status, title=title, message=message
        )


class _Unknown(LookupError):
    """A number or topic that the period does not have."""


def _linker(filters: Filters) -> Callable[[str], str]:
    def link(key: str) -> str:
        return f"/insights/conversations?{filters.query(metric=key)}"

    return link


def link_topic(filters: Filters, topic: Topic) -> str:
    """The conversations of a topic, named by its keywords."""
    return f"/insights/conversations?{filters.query(topic=topic_ref(topic))}"


def _seconds(value: timedelta | None) -> str:
    if value is None:
        return ""
    seconds = value.total_seconds()
    return f"{seconds:.3f}".rstrip("0").rstrip(".")


def _row_view(
    row: ConversationRow, zone: ZoneInfo, intent_title: Callable[[str], str]
) -> dict[str, object]:
    return {
        "id": row.id,
        "channel": row.channel,
        "visibility": row.visibility,
        "started": fmt.moment(row.started, zone),
        "resolver": row.resolver or "not resolved",
        "reason": row.first_handoff_reason,
        "resolved": fmt.moment(row.resolved_at, zone),
        "response": fmt.duration(row.first_human_response),
        "csat": fmt.NONE if row.csat is None else str(row.csat),
        "intents": [intent_title(intent) for intent in row.intents],
    }
