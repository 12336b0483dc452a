"""A small client for the X API v2: post a reply, send a direct message, hide a reply.

Every call goes to ``{api_url}/2/...`` with the brand's user access token (OAuth 2.0, Bearer), so
tests point it at a local stand-in. X bills per call: the outbox counts each one against
``[x] monthly_call_cap`` before it reaches this client (:mod:`carebot.public.delivery`).

Failures become :class:`DeliveryError`: a rate limit (HTTP 429) waits until the
``x-rate-limit-reset`` time X gives (at least a second); server errors, an unreachable API and a
bad or expired token (401) are retried by the outbox; any other refusal (403 "not allowed to
reply", 400 a text too long...) is permanent, with X's own words in the message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from carebot.exceptions import DeliveryError

log = logging.getLogger(__name__)
TIMEOUT = aiohttp.ClientTimeout(total=20)
TWEET = "tweet"  # POST /2/tweets
DM = "dm"  # POST /2/dm_conversations/with/{participant_id}/messages
HIDE = "hide"  # PUT /2/tweets/{id}/hidden


class XApi:
    def __init__(
        self,
        *,
        base_url: str,
        token: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._base = f"{base_url.rstrip('/')}/2"
        self._token = token
        self._clock = clock  # epoch seconds, to read x-rate-limit-reset
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        """Open the HTTP session (again, after :meth:`close`)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=TIMEOUT)

    async def close(self) -> None:
        """Close the HTTP session; calls raise DeliveryError until it is opened again."""
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def reply(self, in_reply_to: str, text: str) -> str | None:
        """Post ``text`` in public as a reply to the post ``in_reply_to``; the new post's id."""
        body = {"text": text, "reply": {"in_reply_to_tweet_id": in_reply_to}}
        data = await self._call(TWEET, "POST", "/tweets", body)
        return _id(data, "id")

    async def direct_message(self, participant_id: str, text: str) -> str | None:
        """Send ``text`` as a direct message to the user ``participant_id``; its dm_event_id."""
        path = f"/dm_conversations/with/{participant_id}/messages"
        data = await self._call(DM, "POST", path, {"text": text})
        return _id(data, "dm_event_id")

    async def set_hidden(self, tweet_id: str, hidden: bool) -> None:
        """Hide (or unhide) a reply to one of the brand's posts."""
        await self._call(HIDE, "PUT", f"/tweets/{tweet_id}/hidden", {"hidden": hidden})

    async def _call(self, kind: str, method: str, path: str, body: dict[str, Any]) -> Any:
        session = self._opened()
        headers = {"Authorization": f"Bearer {self._token}"}
        try:
            async with session.request(
                method, f"{self._base}{path}", json=body, headers=headers
            ) as response:
                data = await _json(response)
                if response.status >= 400:
                    reset = response.headers.get("x-rate-limit-reset")
                    raise self._error(kind, response.status, data, reset)
                return data.get("data")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DeliveryError(f"X API unreachable ({kind}): {exc!r}") from exc

    def _opened(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise DeliveryError("the X API client is not open (channel not started, or closed)")
        return self._session

    def _error(
        self, kind: str, status: int, data: dict[str, Any], reset: str | None
    ) -> DeliveryError:
        words = f"X API {status} ({kind}): {_detail(data)}"
        if status == 429:
            wait = None
            if reset is not None and reset.strip().isdigit():
                wait = max(1.0, int(reset) - self._clock())
            return DeliveryError(f"{words} (rate limited)", retry_after=wait)
        if status >= 500 or status == 401:
            return DeliveryError(words)
        return DeliveryError(words, permanent=True)


def _id(data: Any, key: str) -> str | None:
    value = data.get(key) if isinstance(data, dict) else None
    return str(value) if value else None


def _detail(data: dict[str, Any]) -> str:
    """X's words: a problem's ``detail`` and ``title`` (v2), or ``errors[].message``."""
    words = [str(data[key]) for key in ("title", "detail") if data.get(key)]
    for error in data.get("errors") or []:
        if isinstance(error, dict):
            words += [str(error[k]) for k in ("message", "detail") if error.get(k)]
    return "; ".join(dict.fromkeys(words)) or "no detail"


async def _json(response: aiohttp.ClientResponse) -> dict[str, Any]:
    try:
        data = await response.json(content_type=None)
    except ValueError:
        data = None
    return data if isinstance(data, dict) else {}
