"""Who may act on the Slack desk, and what agents are called.

With ``[slack] agents`` (Slack user ids) only those users may press the card's buttons or have
their thread replies relayed; without it, the members of the care channel may. The member list
is cached (``members_cache_seconds``) and fetched again early when someone unknown acts, so a
colleague who just joined is not refused for long. Names come from ``users.info``, cached.

When the member list cannot be fetched (Slack failing, a missing scope), the last one fetched
still counts for the people on it: a stale list beats none. Whether anyone else may act cannot
be told then, and :meth:`People.may_act` raises instead of answering no; the fetch is tried
again ``retry_seconds`` later at the earliest, and :meth:`People.next_try` waits for that.

Each team's channel has its own member list: :meth:`People.in_channel` gives the people of
another channel (sharing the names and ``[slack] agents``), for the handoffs of a team without
members of its own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping

from carebot.desk.slack.api import SlackApi
from carebot.desk.slack.mrkdwn import escape
from carebot.exceptions import SlackError

log = logging.getLogger(__name__)
REFRESH_UNKNOWN_AFTER = 30.0  # seconds: an unknown user makes the member list refresh this often
RETRY_SECONDS = 15.0  # after a failed fetch of the member list: when to ask Slack again


class People:
    def __init__(
        self,
        api: SlackApi,
        *,
        agents: tuple[str, ...],
        cache_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        retry_seconds: float = RETRY_SECONDS,
        slack_ids: Mapping[str, str] | None = None,
        channel: str | None = None,
        names: dict[str, str] | None = None,
    ) -> None:
        """``slack_ids``: the Slack user ids of agents by the name they act under (the inbox
        agents' ``slack_user_id``), for mentioning them. ``channel``: whose members may act
        (None: the API's care channel)."""
        self._slack_ids = dict(slack_ids or {})
        self._channel = channel
        self._others: dict[str, People] = {}
        self._api = api
        self._agents = frozenset(agents)
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._retry_seconds = retry_seconds
        self._members: frozenset[str] | None = None  # the last list fetched; None: never
        self._fetched_at: float | None = None
        self._failure: tuple[float, SlackError] | None = None  # when the last fetch failed, why
        self._fetching = asyncio.Lock()
        self._attempts = 0  # fetches finished, failed or not: callers that queued share one
        self._retry = asyncio.Event()
        self._wakes = 0
        self._names: dict[str, str] = names if names is not None else {}

    def in_channel(self, channel: str | None) -> People:
        """The people of ``channel`` (a team's Slack channel): its own member list, the same
        names and ``[slack] agents``. This desk's own channel (or None) gives itself."""
        if not channel or channel == (self._channel or self._api.channel):
            return self
        if channel not in self._others:
            self._others[channel] = People(
                self._api,
                agents=tuple(self._agents),
                cache_seconds=self._cache_seconds,
                clock=self._clock,
                retry_seconds=self._retry_seconds,
                slack_ids=self._slack_ids,
                channel=channel,
                names=self._names,
            )
        return self._others[channel]

    async def may_act(self, user_id: str) -> bool:
        """Whether ``user_id`` is a care agent. Raises SlackError when that cannot be told: the
        member list is needed, cannot be fetched, and the last one fetched does not name them."""
        if self._agents:
            return user_id in self._agents
        if self._needs_fetch(user_id):
            try:
                await self._fetch()
            except SlackError as exc:
                if self._members is None or user_id not in self._members:
                    raise
                log.warning(
                    "Cannot fetch the care channel's members (%s); %s is on the last list",
                    exc,
                    user_id,
                )
                return True
        return self._members is not None and user_id in self._members

    @property
    def wakes(self) -> int:
        """How many times waiters were woken (the list fetched, or :meth:`retry_now`)."""
        return self._wakes

    async def next_try(self, *, woken: int) -> None:
        """Wait until the member list may be asked for again: ``retry_seconds``, or less when
        it is fetched or :meth:`retry_now` is called; at once if :attr:`wakes` has moved past
        ``woken`` (what it was when the caller's last try failed)."""
        if self._wakes != woken:
            return
        try:
            async with asyncio.timeout(self._retry_seconds):
                await self._retry.wait()
        except TimeoutError:
            pass  # time to ask Slack again

    def retry_now(self) -> None:
        """Ask Slack for the member list at the next chance, without waiting out the retry."""
        self._failure = None
        self._wake_waiters()

    def mention(self, name: str) -> str:
        """``name`` as a Slack mention (which notifies them) when it is the name of an agent
        with a ``slack_user_id`` or of someone this desk has seen act, else the name itself."""
        if name in self._slack_ids:
            return f"<@{self._slack_ids[name]}>"
        found = [user for user, known in self._names.items() if known == name]
        return f"<@{found[0]}>" if len(found) == 1 else escape(name)

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

    def _needs_fetch(self, user_id: str) -> bool:
        now = self._clock()
        age = float("inf") if self._fetched_at is None else now - self._fetched_at
        unknown = self._members is None or user_id not in self._members
        return age >= self._cache_seconds or (unknown and age >= REFRESH_UNKNOWN_AFTER)

    async def _fetch(self) -> None:
        """Fetch the member list, once for all callers waiting meanwhile; raises the failure,
        also the last one again while ``retry_seconds`` have not passed since."""
        attempts = self._attempts
        async with self._fetching:
            if self._attempts != attempts:  # fetched while this caller waited: share the outcome
                if self._failure is not None:
                    raise _again(self._failure[1])
                return
            if self._failure is not None and self._clock() - self._failure[0] < self._retry_seconds:
                raise _again(self._failure[1])
            try:
                members = await self._api.members(self._channel)
            except SlackError as exc:
                self._failure = (self._clock(), exc)
                raise
            finally:
                self._attempts += 1
            self._members, self._fetched_at, self._failure = frozenset(members), self._clock(), None
            self._wake_waiters()

    def _wake_waiters(self) -> None:
        self._wakes += 1
        self._retry.set()
        self._retry = asyncio.Event()


def _again(failure: SlackError) -> SlackError:
    """The same failure, raised anew for another caller."""
    return SlackError(str(failure), error=failure.error, retryable=failure.retryable)
