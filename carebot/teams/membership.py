"""Who may act on a team's handoffs (take over, reply, send the draft, resolve, close,
transfer).

- The team's members (:meth:`carebot.config.Settings.team_members`: its ``members`` and the
  agents that list it in their ``teams``).
- An agent with the role ``lead`` may act on any team's handoffs: leads cover for absent
  colleagues and move work between teams.
- A team with no members at all falls back to its Slack channel's members, as today's single
  care channel does. That list lives in Slack: :meth:`Membership.may_act_in_slack` takes it
  from the Slack desk; the agent desk (:class:`carebot.agents.AgentDesk`) lets every agent act
  on such a team's handoffs, as before teams existed. Without ``[[teams]]`` the one default team
  has no members, so everyone may act, as today.

An agent is named by their ``[[inbox.agents]]`` name, their display name (the inbox passes it)
or their Slack user id.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from carebot.config import AgentSettings, Settings
from carebot.exceptions import StoreError

LEAD = "lead"


class Access(StrEnum):
    MEMBER = "member"  # a member of the team
    LEAD = "lead"  # a lead, who may act on every team
    CHANNEL = "channel"  # the team has no members: its Slack channel's members may act
    REFUSED = "refused"


class NotAMember(StoreError):
    """An agent acted on a handoff of a team they are not a member of."""


@dataclass(frozen=True)
class Membership:
    settings: Settings

    def find(self, who: str) -> AgentSettings | None:
        """The configured agent ``who`` names: by name first, then Slack user id, then a
        display name only one agent has."""
        agents = self.settings.inbox.agents
        for agent in agents:
            if who in (agent.name, agent.slack_user_id):
                return agent
        labelled = [agent for agent in agents if agent.label == who]
        return labelled[0] if len(labelled) == 1 else None

    def access(self, team: str | None, who: str) -> Access:
        """How ``who`` may act on ``team``'s handoffs (None: the default team)."""
        name = self.settings.team(team).name
        members = self.settings.team_members(name)
        if not members:
            return Access.CHANNEL
        agent = self.find(who)
        if agent is None:
            return Access.REFUSED
        if agent.name in members:
            return Access.MEMBER
        return Access.LEAD if LEAD in agent.roles else Access.REFUSED

    def check(self, conversation_id: int, team: str | None, who: str) -> None:
        """Raise :class:`NotAMember` when ``who`` may not act on the conversation (its handoff
        is ``team``'s); on a team without members, everyone passes (see the module's notes)."""
        if self.access(team, who) is Access.REFUSED:
            label = self.settings.team(team).label
            raise NotAMember(
                f"Conversation {conversation_id} belongs to the {label} team; only its members "
                "can act on it."
            )

    def slack_channel_fallback(self, team: str | None) -> str | None:
        """The Slack channel whose members may act on ``team``'s handoffs because the team
        has no members (None: it has members; "" when no channel is configured either)."""
        name = self.settings.team(team).name
        if self.settings.team_members(name):
            return None
        return self.settings.slack_channel(name)

    def may_act_in_slack(
        self, team: str | None, slack_user_id: str, channel_members: frozenset[str]
    ) -> bool:
        """Whether the Slack user may act on ``team``'s handoffs: a member or lead (by their
        ``slack_user_id``), or, for a team without members, a member of its Slack channel
        (``channel_members``: the channel's user ids, as Slack lists them)."""
        access = self.access(team, slack_user_id)
        if access is Access.CHANNEL:
            return slack_user_id in channel_members
        return access is not Access.REFUSED
