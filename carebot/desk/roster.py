"""Who works in the inbox, for its pages: the agents one can assign a conversation to (by agent
name, shown by display name), the teams and their display names, and each agent's teams (the
team's ``members`` and the teams the agent lists; README "Teams")."""

from __future__ import annotations

from dataclasses import dataclass, field

from carebot.config import Settings
from carebot.desk.auth import Agents


@dataclass(frozen=True, slots=True)
class Roster:
    agents: dict[str, str] = field(default_factory=dict)  # agent name -> display name
    teams: dict[str, str] = field(default_factory=dict)  # team name -> display name
    members: dict[str, frozenset[str]] = field(default_factory=dict)  # team -> agent names
    default_team: str = ""

    @classmethod
    def from_settings(cls, settings: Settings, logins: Agents | None = None) -> Roster:
        agents = {a.name: a.label for a in settings.inbox.agents}
        for name in logins.names() if logins is not None else []:  # the demo agent
            found = logins.get(name) if logins is not None else None
            agents.setdefault(name, found.display_name if found else name)
        teams = settings.teams_in_effect()
        return cls(
            agents=agents,
            teams={t.name: t.label for t in teams},
            members={t.name: settings.team_members(t.name) for t in teams},
            default_team=settings.default_team().name,
        )

    def label(self, agent: str | None) -> str:
        """An agent's display name (their name if not configured any more)."""
        return self.agents.get(agent or "", agent or "")

    def team_label(self, team: str | None) -> str:
        """A team's display name; a handoff from before teams is the default team's."""
        name = team or self.default_team
        return self.teams.get(name, name)

    def teams_of(self, agent: str) -> frozenset[str | None]:
        """The teams ``agent`` belongs to (None too when that includes the default team: the
        handoffs from before teams are its)."""
        found: set[str | None] = {t for t, names in self.members.items() if agent in names}
        if self.default_team in found:
            found.add(None)
        return frozenset(found)

    def concerns(self, agent: str, team: str | None) -> bool:
        """Whether a handoff to ``team`` is for ``agent``: one of their teams, or any team for
        an agent in none."""
        mine = self.teams_of(agent)
        return not mine or team in mine or (team is None and None in mine)
