"""The human figures of :mod:`carebot.insight.metrics` split by team, and the share of handoffs
answered within their team's first-response target (:mod:`carebot.teams.targets`).

A handoff's team is the one it was routed (or transferred) to; handoffs from before teams
existed, and those of a team no longer configured, are the default team's
(:meth:`carebot.config.Settings.team`). Each is defined in the module docstring of
:mod:`carebot.insight.metrics`, in the same words.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime

from carebot.config import Settings
from carebot.hours import BusinessHours
from carebot.insight.facts import ConversationFacts, HandoffFact
from carebot.insight.figures import csat, resolution_time, spread
from carebot.insight.outcomes import Outcome, first_reply
from carebot.insight.report import Share, Spread, TeamRow
from carebot.teams.targets import FirstResponseTargets


class TeamFigures:
    """The by-team figures, with the teams' settings (names, hours, targets)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._targets = FirstResponseTargets(settings)

    def team_of(self, handoff: HandoffFact) -> str:
        """team: the handoff's team; the default team for None or a team no longer
        configured."""
        return self._settings.team(handoff.team).name

    def only(self, facts: list[ConversationFacts], team: str) -> list[ConversationFacts]:
        """A team's view: the conversations with a handoff of ``team``, each with only that
        team's handoffs."""
        wanted = self._settings.team(team).name
        found = []
        for f in facts:
            mine = tuple(h for h in f.handoffs if self.team_of(h) == wanted)
            if mine:
                found.append(replace(f, handoffs=mine))
        return found

    def rows(self, outcomes: list[Outcome], now: datetime) -> tuple[TeamRow, ...]:
        """One row per configured team, in config order (each handoff is a configured
        team's: :meth:`team_of`)."""
        handed = [o for o in outcomes if o.handed_over]
        return tuple(self._row(t.name, handed, now) for t in self._settings.teams_in_effect())

    def within_target(
        self, outcomes: list[Outcome], now: datetime, team: str | None = None
    ) -> Share:
        """answered within target: the handoffs the bot opened (as for first human response)
        whose team has a first-response target, answered (first agent reply) at or before
        the due time (the target counted in the team's business hours) / such handoffs
        answered, plus those still unanswered when the due time passed while they were open
        (not resolved or withdrawn before it). A handoff of a team without a target is not
        counted; one not yet due and unanswered, or ended unanswered before it was due, has
        no verdict. ``team``: only that team's handoffs."""
        met: list[int] = []
        judged = 0
        for o, handoff, verdict in self._verdicts(outcomes, now):
            if team is not None and self.team_of(handoff) != team:
                continue
            judged += 1
            if verdict:
                met.append(o.facts.id)
        return Share(len(met), judged, tuple(dict.fromkeys(met)))

    def _verdicts(
        self, outcomes: list[Outcome], now: datetime
    ) -> Iterator[tuple[Outcome, HandoffFact, bool]]:
        """(outcome, handoff, met) of each handoff the bot opened that has a verdict."""
        for o in outcomes:
            for handoff in o.facts.handoffs:
                if not handoff.by_bot:
                    continue
                team = self.team_of(handoff)
                due = self._targets.due(team, handoff.at)
                if due is None:
                    continue
                reply = first_reply(o.facts, handoff)
                if reply is not None:
                    yield o, handoff, reply <= due
                elif due <= now and (handoff.resolved_at is None or handoff.resolved_at > due):
                    yield o, handoff, False

    def _row(self, name: str, handed: list[Outcome], now: datetime) -> TeamRow:
        mine = [o for o in handed if any(self.team_of(h) == name for h in o.facts.handoffs)]
        resolved = [o for o in handed if self._resolving_team(o) == name]
        responses = [
            (r, o.facts.id)
            for o in handed
            for r in o.first_responses
            if self._settings.team(r.team).name == name
        ]
        hours = self._settings.hours_of(name)
        clock = BusinessHours(hours) if any(hours.opening(d) for d in range(7)) else None
        business: Spread | None = None
        if clock is not None:
            business = spread(
                (clock.open_between(r.handed_over_at, r.answered_at), cid) for r, cid in responses
            )
        return TeamRow(
            team=name,
            label=self._settings.team(name).label,
            handoffs=Share(len(mine), len(handed), tuple(o.facts.id for o in mine)),
            first_response=spread((r.wait, cid) for r, cid in responses),
            first_response_business=business,
            within_target=(
                self.within_target(handed, now, name) if self._targets.target(name) else None
            ),
            resolution_time_human=resolution_time(resolved, lambda o: o.human_resolved_at),
            csat_human=csat(resolved, "human"),
        )

    def _resolving_team(self, o: Outcome) -> str | None:
        """The team of the conversation's human resolution (its latest handoff an agent
        resolved); None: no person resolved it."""
        done = [h for h in o.facts.handoffs if h.resolved_by_agent and h.resolved_at]
        if not done:
            return None
        latest = max(done, key=lambda h: h.resolved_at or h.at)
        return self.team_of(latest)
