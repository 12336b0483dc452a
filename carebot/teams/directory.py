"""What the stores know of the teams: where a new handoff goes (the router, with the intent's
tags added), whether a team exists, its round-robin turn, and the team of a handoff an agent
starts themselves.

The store must not read the intents (:mod:`carebot.nlu`): ``tags`` is given by whoever builds
the directory (the runtime looks the intent up in the live intents, reloads included).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from carebot.config import Settings
from carebot.teams.membership import Membership
from carebot.teams.routing import Route, RouteFacts, Router

Tags = Callable[[str], Sequence[str]]  # an intent id -> its tags (unknown intent: none)


def _no_tags(_intent: str) -> Sequence[str]:
    return ()


class TeamDirectory:
    def __init__(self, settings: Settings, *, tags: Tags = _no_tags) -> None:
        self._settings = settings
        self._router = Router.configured(settings)
        self._tags = tags
        self._membership = Membership(settings)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(team.name for team in self._settings.teams_in_effect())

    @property
    def default_team(self) -> str:
        """The team of a handoff no rule matched."""
        return self._router.default.team

    def has(self, team: str) -> bool:
        return team in self.names

    def label(self, team: str | None) -> str:
        """The team's display name ("Billing"), for messages to agents."""
        return self._settings.team(team).label

    def route(self, facts: RouteFacts) -> Route:
        """The team of a handoff triage opened (its intent's tags looked up first)."""
        if facts.intent is not None and not facts.intent_tags:
            facts = dataclasses.replace(facts, intent_tags=tuple(self._tags(facts.intent)))
        return self._router.route(facts)

    def agent_route(self, agent: str) -> Route:
        """The team of a handoff an agent starts (taking over a conversation the bot has):
        the agent's own team when they belong to exactly one, else the default team."""
        found = self._membership.find(agent)
        if found is not None:
            teams = [
                team.name
                for team in self._settings.teams_in_effect()
                if found.name in self._settings.team_members(team.name)
            ]
            if len(teams) == 1:
                return Route(teams[0], f"team of {found.label}")
        return self._router.default

    def rotation(self, team: str) -> tuple[str, ...]:
        """The members who take the team's new handoffs in turn, in turn order (by name);
        empty when the team does not assign round-robin."""
        if not self._settings.team(team).round_robin or not self.has(team):
            return ()
        return tuple(sorted(self._settings.team_members(team)))
