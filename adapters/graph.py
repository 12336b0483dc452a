"""A small client for Meta's Graph API: send a message, fetch a customer's media, and the calls
of public comments (reply, private reply, hide, look up a mention).

Every call goes to ``{graph_url}/{api_version}/...`` with the channel's access token, so tests
point it at a local stand-in. Failures become :class:`DeliveryError`: rate limits (HTTP 429, the
app and business-use-case limits 4, 17, 32, 613 and 80001-80009, throughput error 130429 or the
per-recipient limit 131056, which Meta sends as HTTP 400 without ``Retry-After``) and server
errors are retried by the outbox with exponential backoff; a closed customer-service window, an
unreachable recipient or a private reply Meta allows no more (one per comment, within 7 days)
is refused for good; a bad token is retried (the replies wait until it is fixed).

Page and Instagram calls count against Meta's "business use case" limits, which every answer
reports in the ``X-Business-Use-Case-Usage`` header. Once a limit is reached (a percentage at
100 or more, or a time to regain access), the client calls Meta no more until that time has
passed: each call raises :class:`DeliveryError` with ``retry_after`` right away.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from carebot.exceptions import DeliveryError

log = logging.getLogger(__name__)
TIMEOUT = aiohttp.ClientTimeout(total=20)
USAGE_HEADER = "X-Business-Use-Case-Usage"
RATE_LIMITED = frozenset({4, 17, 32, 613, *range(80001, 80010), 130429, 131048, 131056})
TEMPORARY = frozenset({1, 2, 131000, 131016})
AUTH = frozenset({102, 190, 463, 467})
WINDOW_CLOSED = frozenset({131047, 2018278})  # WhatsApp; Messenger's subcode
# A private reply Meta refuses: one was sent already, or the comment is older than 7 days
# (10900, subcode 2018292); 551: the person is not available.
NO_PRIVATE_REPLY = frozenset({10900, 551, 2018292})
MIN_WAIT = 60.0  # seconds, when a business-use-case limit is reached


@dataclass(frozen=True, slots=True)
class Usage:
    """The busiest business use case of the last answer's ``X-Business-Use-Case-Usage``:
    ``percent`` is the highest of its call count, CPU time and total time (percentages of
    the limit); ``regain_minutes`` Meta's estimated time until access is regained."""

    business_id: str
    type: str
    percent: float
    regain_minutes: float

    @property
    def limited(self) -> bool:
        return self.percent >= 100 or self.regain_minutes > 0

    @property
    def wait(self) -> float:
        """Seconds to call Meta no more (at least :data:`MIN_WAIT`) once limited."""
        return max(MIN_WAIT, self.regain_minutes * 60)


def read_usage(header: str | None) -> Usage | None:
    """The busiest use case the header reports; None when there is none (or it is garbled)."""
    try:
        data = json.loads(header) if header else None
    except ValueError:
        log.warning("Ignoring an unreadable %s header", USAGE_HEADER)
        return None
    found: list[Usage] = []
    for business, cases in (data or {}).items() if isinstance(data, dict) else ():
        for case in cases if isinstance(cases, list) else ():
            if isinstance(case, dict):
                found.append(_usage(str(business), case))
    return max(found, key=lambda u: (u.limited, u.percent, u.regain_minutes), default=None)


def _usage(business: str, case: Mapping[str, Any]) -> Usage:
    def number(key: str) -> float:
        value = case.get(key)
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0

    percent = max(number("call_count"), number("total_cputime"), number("total_time"))
    regain = number("estimated_time_to_regain_access")
    return Usage(business, str(case.get("type", "")), percent, regain)


class GraphApi:
    def __init__(
        self,
        *,
        base_url: str,
        version: str,
        token: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._base = f"{base_url.rstrip('/')}/{version}"
        self._token = token
        self._session: aiohttp.ClientSession | None = None
        self._clock = clock
        self._limited_until = 0.0
        self.usage: Usage | None = None  # the last answer's busiest use case, for logging

    async def open(self) -> None:
        """Open the HTTP session (again, after :meth:`close`)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=TIMEOUT)

    async def close(self) -> None:
        """Close the HTTP session; calls raise DeliveryError until it is opened again."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, node: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST ``/{node}/messages``; the answer, or :class:`DeliveryError`."""
        return await self.post(f"{node}/messages", body)

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST ``body`` (JSON) to ``/{path}``; the answer, or :class:`DeliveryError`."""
        return await self._call("POST", path, body=body)

    async def get(self, path: str, params: Mapping[str, str]) -> dict[str, Any]:
        """GET ``/{path}?params``; the answer, or :class:`DeliveryError`."""
        return await self._call("GET", path, params=params)

    async def media(self, media_id: str) -> tuple[bytes, str]:
        """A customer's media file (WhatsApp): its URL first, then the bytes, both with the
        token. Returns (content, content type)."""
        info = await self.get(media_id, {})
        if "url" not in info:
            raise DeliveryError(f"Graph API media {media_id}: no url in the answer", permanent=True)
        session = self._opened()
        try:
            async with session.get(info["url"], headers=self._auth()) as response:
                response.raise_for_status()
                return await response.read(), info.get("mime_type", "application/octet-stream")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DeliveryError(f"Graph API media download failed: {exc!r}") from exc

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        session = self._opened()
        self._check_limit()
        try:
            async with session.request(
                method, f"{self._base}/{path}", json=body, params=params, headers=self._auth()
            ) as response:
                self._note_usage(response.headers.get(USAGE_HEADER))
                data = await _json(response)
                if response.status >= 400 or "error" in data:
                    raise _error(response.status, data, response.headers.get("Retry-After"))
                return data
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DeliveryError(f"Graph API unreachable: {exc!r}") from exc

    def _check_limit(self) -> None:
        left = self._limited_until - self._clock()
        if left > 0:
            raise DeliveryError(
                f"Meta's business use case limit was reached ({self.usage}); not calling the "
                f"Graph API for {math.ceil(left)} s more",
                retry_after=max(MIN_WAIT, float(math.ceil(left))),
            )

    def _note_usage(self, header: str | None) -> None:
        usage = read_usage(header)
        if usage is None:
            return
        self.usage = usage
        if usage.limited:
            self._limited_until = max(self._limited_until, self._clock() + usage.wait)
            log.warning(
                "Meta's business use case limit reached (%s %s at %.0f%%): pausing Graph API "
                "calls for %.0f s",
                usage.business_id,
                usage.type,
                usage.percent,
                usage.wait,
            )
        elif usage.percent >= 75:
            log.info("Meta business use case %s at %.0f%%", usage.type, usage.percent)

    def _opened(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise DeliveryError("the Graph API client is not open (channel not started, or closed)")
        return self._session

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"}


async def _json(response: aiohttp.ClientResponse) -> dict[str, Any]:
    try:
        data = await response.json(content_type=None)
    except ValueError:
        data = None
    return data if isinstance(data, dict) else {}


def _error(status: int, data: dict[str, Any], retry_after: str | None) -> DeliveryError:
    error = data.get("error") or {}
    code = error.get("code")
    subcode = error.get("error_subcode")
    words = f"Graph API {status}, error {code}: {error.get('message', 'no message')}"
    hint = float(retry_after) if retry_after and retry_after.isdigit() else None
    if status == 429 or code in RATE_LIMITED:
        return DeliveryError(f"{words} (rate limited)", retry_after=hint)
    if status >= 500 or code in TEMPORARY or code in AUTH or status in (401, 403):
        return DeliveryError(words, retry_after=hint)
    if code in WINDOW_CLOSED or subcode in WINDOW_CLOSED:
        return DeliveryError(
            f"{words}. The customer-service window (24 h after the customer's last message) "
            "has closed.",
            permanent=True,
        )
    if code in NO_PRIVATE_REPLY or subcode in NO_PRIVATE_REPLY:
        return DeliveryError(
            f"{words}. Meta refuses it for good: a comment gets one private reply, within 7 "
            "days of it (this one has had it, or is older), and a person who is unavailable "
            "cannot be reached.",
            permanent=True,
        )
    return DeliveryError(words, permanent=True)  # a 400 Meta will refuse again
