"""A small client for Meta's Graph API: send a message, fetch a customer's media.

Every call goes to ``{graph_url}/{api_version}/...`` with the channel's access token, so tests
point it at a local stand-in. Failures become :class:`DeliveryError`: rate limits (HTTP 429, and
throughput error 130429 or the per-recipient limit 131056, which Meta sends as HTTP 400 without
``Retry-After``) and server errors are retried by the outbox with exponential backoff; a closed
customer-service window or an unreachable recipient is refused for good; a bad token is retried
(the replies wait until it is fixed).
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp

from carebot.exceptions import DeliveryError

log = logging.getLogger(__name__)
TIMEOUT = aiohttp.ClientTimeout(total=20)
RATE_LIMITED = frozenset({4, 17, 32, 613, 80007, 130429, 131048, 131056})
TEMPORARY = frozenset({1, 2, 131000, 131016})
AUTH = frozenset({102, 190, 463, 467})
WINDOW_CLOSED = frozenset({131047, 2018278})  # WhatsApp; Messenger's subcode


class GraphApi:
    def __init__(self, *, base_url: str, version: str, token: str) -> None:
        self._base = f"{base_url.rstrip('/')}/{version}"
        self._token = token
        self._session: aiohttp.ClientSession | None = None

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
        session = self._opened()
        try:
            async with session.post(
                f"{self._base}/{node}/messages", json=body, headers=self._auth()
            ) as response:
                data = await _json(response)
                if response.status >= 400 or "error" in data:
                    raise _error(response.status, data, response.headers.get("Retry-After"))
                return data
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DeliveryError(f"Graph API unreachable: {exc!r}") from exc

    async def media(self, media_id: str) -> tuple[bytes, str]:
        """A customer's media file (WhatsApp): its URL first, then the bytes, both with the
        token. Returns (content, content type)."""
        session = self._opened()
        try:
            async with session.get(f"{self._base}/{media_id}", headers=self._auth()) as response:
                info = await _json(response)
                if response.status >= 400 or "url" not in info:
                    raise _error(response.status, info, None)
            async with session.get(info["url"], headers=self._auth()) as response:
                response.raise_for_status()
                return await response.read(), info.get("mime_type", "application/octet-stream")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DeliveryError(f"Graph API media download failed: {exc!r}") from exc

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
    return DeliveryError(words, permanent=True)  # a 400 Meta will refuse again
