"""The Slack Web API calls the desk makes, through slack_sdk's real client.

The client points at ``[slack] api_url`` (Slack's public API by default; GovSlack and
Enterprise setups use their own, the tests a local stand-in). Connection errors, 429 (after
``Retry-After``) and 5xx answers are retried by slack_sdk's retry handlers; what still fails
is raised as :class:`carebot.exceptions.SlackError`, and the caller tries again later.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient

from carebot.exceptions import SlackError
from carebot.pacing import Pacer

TIMEOUT = 10  # seconds per call
HINTS = {
    "not_in_channel": " (invite the app to the care channel: /invite @carebot)",
    "channel_not_found": " (check [slack] channel in config.toml, and invite the app to it)",
    "invalid_auth": " (the bot token is wrong or revoked: check SLACK_BOT_TOKEN)",
    "not_authed": " (no bot token was sent: check SLACK_BOT_TOKEN)",
    "missing_scope": " (add the scope to the Slack app: see slack-manifest.yml, then reinstall)",
}


class _ServerErrorRetry(AsyncServerErrorRetryHandler):
    """slack_sdk's handler retries 500 and 503 only; a proxy's 502 and 504 are as passing."""

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        return response is not None and response.status_code in (500, 502, 503, 504)


def retry_handlers() -> list[AsyncRetryHandler]:
    return [
        AsyncConnectionErrorRetryHandler(max_retry_count=2),
        AsyncRateLimitErrorRetryHandler(max_retry_count=3),
        _ServerErrorRetry(max_retry_count=2),
    ]


def make_client(token: str, base_url: str) -> AsyncWebClient:
    base_url = base_url if base_url.endswith("/") else base_url + "/"  # URLs are urljoin-ed
    return AsyncWebClient(
        token=token, base_url=base_url, timeout=TIMEOUT, retry_handlers=retry_handlers()
    )


class SlackApi:
    """Posts and updates in the care channel (or, given ``channel``, a team's channel),
    ephemeral notes, modals, users and members."""

    def __init__(self, client: AsyncWebClient, *, channel: str, pacer: Pacer) -> None:
        self.client = client
        self.channel = channel
        self._pacer = pacer

    async def post(
        self,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        *,
        thread_ts: str | None = None,
        broadcast: bool = False,
        channel: str | None = None,
    ) -> str:
        """Post to the care channel or ``channel`` (in a thread when ``thread_ts``); returns the
        message ts."""
        channel = channel or self.channel
        await self._pacer.wait(channel)
        extra: dict[str, Any] = {"thread_ts": thread_ts} if thread_ts else {}
        if thread_ts and broadcast:
            extra["reply_broadcast"] = True
        answer = await self._call(
            "chat_postMessage",
            channel=channel,
            text=text,
            blocks=blocks,
            unfurl_links=False,
            unfurl_media=False,
            **extra,
        )
        return str(answer["ts"])

    async def update(
        self, ts: str, text: str, blocks: list[dict[str, Any]], *, channel: str | None = None
    ) -> None:
        await self._call(
            "chat_update", channel=channel or self.channel, ts=ts, text=text, blocks=blocks
        )

    async def ephemeral(
        self,
        user: str,
        text: str,
        *,
        thread_ts: str | None = None,
        blocks: list[dict[str, Any]] | None = None,
        channel: str | None = None,
    ) -> None:
        """A message only ``user`` sees, in the care channel or ``channel`` (or a thread)."""
        extra: dict[str, Any] = {"thread_ts": thread_ts} if thread_ts else {}
        if blocks:
            extra["blocks"] = blocks
        await self._call(
            "chat_postEphemeral", channel=channel or self.channel, user=user, text=text, **extra
        )

    async def react(self, name: str, ts: str, *, channel: str | None = None) -> None:
        """Add the reaction ``name`` (e.g. ``white_check_mark``) to a message in the channel."""
        await self._call("reactions_add", channel=channel or self.channel, name=name, timestamp=ts)

    async def open_modal(self, trigger_id: str, view: dict[str, Any]) -> None:
        await self._call("views_open", trigger_id=trigger_id, view=view)

    async def user(self, user_id: str) -> dict[str, Any]:
        answer = await self._call("users_info", user=user_id)
        return dict(answer["user"])

    async def members(self, channel: str | None = None) -> set[str]:
        """Everyone in the care channel or ``channel`` (all pages)."""
        members: set[str] = set()
        cursor = None
        while True:
            answer = await self._call(
                "conversations_members", channel=channel or self.channel, limit=200, cursor=cursor
            )
            members.update(answer.get("members", []))
            cursor = (answer.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return members

    async def _call(self, method: str, **params: Any) -> Any:
        api_method = method.replace("_", ".", 1)
        try:
            return await getattr(self.client, method)(**params)
        except SlackApiError as exc:
            data = exc.response.data  # a proxy's 5xx may carry text, not Slack's JSON
            error = data.get("error") if isinstance(data, dict) else None
            status = exc.response.status_code
            hint = HINTS.get(str(error), "")
            raise SlackError(
                f"Slack {api_method} failed: HTTP {status}, {error or 'no error code'}{hint}",
                error=error,
                retryable=status == 429 or status >= 500,
            ) from exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise SlackError(
                f"Slack {api_method} failed: cannot reach {self.client.base_url} "
                f"({type(exc).__name__}: {exc})",
                retryable=True,
            ) from exc
