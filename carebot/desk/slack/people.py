"""Who may act on the Slack desk, and what agents are called.

With ``[slack] agents`` (Slack user ids) only those users may press the card's buttons or have
their thread replies relayed; without it, the members of the care channel may. The member list
is cached (``members_cache_seconds``) and fetched again early when someone unknown acts, so a
colleague who just joined is not refused for long. Names come from ``users.info``, cached.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from carebot.desk.slack.api import SlackApi
from carebot.exceptions import SlackError

log = logging.getLogger(__name__)
REFRESH_UNKNOWN_AFTER = 30.0  # seconds: an unknown user makes the member list refresh this often


class People:
    def __init__(
        self,
        api: SlackApi,
        *,
        agents: tuple[str, ...],
        cache_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._api = api
        self._agents = frozenset(agents)
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._members: frozenset[str] = frozenset()
        self._fetched_at: float | None = None
        self._names: dict[str, str] = {}

    async def may_act(self, user_id: str) -> bool:
        if self._agents:
            return user_id in self._agents
        age = float("inf") if self._fetched_at is None else self._clock() - self._fetched_at
        unknown = user_id not in self._members
        if age >= self._cache_seconds or (unknown and age >= REFRESH_UNKNOWN_AFTER):
            await self._refresh()
        return user_id in self._members

    async def name(self, user_id: str) -> str:
        """The agent's Slack display name (real name, user name, or the id if Slack is down)."""
        if user_id in self._names:
            return self._names[user_id]
        try:
            user = await self._api.user(user_id)
        except SlackError as exc:
            log.warning("Cannot look up Slack user %s (%s); recording the id", user_id, exc)
            return user_id
        profile = user.get("profile") or {}
        name = (
            profile.get("display_name")
            or profile.get("real_name")
            or user.get("real_name")
            or user.get("name")
            or user_id
        )
        self._names[user_id] = str(name)
        return self._names[user_id]

    async def _refresh(self) -> None:
        self._members = frozenset(await self._api.members())
        self._fetched_at = self._clock()
