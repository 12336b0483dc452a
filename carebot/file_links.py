"""Links agents open to see a file a customer sent (a photo on Telegram, a voice note on
WhatsApp).

The platforms keep the files behind the bot's credentials, so a link points at carebot, carries
the platform's file id signed (valid 30 days; a forged or altered link gets 404), and carebot
fetches the file from the platform when an agent opens it. No token ever appears in a link.
A file the platform refuses for good (it has no such file, or no longer) gets 404; a platform
that cannot be reached, or fails, 502.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from carebot.exceptions import DeliveryError
from carebot.signing import Signer

LINK_DAYS = 30
Fetch = Callable[[str], Awaitable[tuple[bytes, str]]]  # file id -> (content, content type)


class FileLinks:
    def __init__(
        self, *, signer: Signer, public_url: str, path: str, platform: str, fetch: Fetch
    ) -> None:
        self._signer = signer
        self._base = f"{public_url.rstrip('/')}{path}"
        self._path = path
        self._platform = platform
        self._fetch = fetch

    def link(self, file_id: str) -> str:
        return self._base + self._signer.sign(file_id, ttl=LINK_DAYS * 86400)

    def mount(self, app: web.Application) -> None:
        app.router.add_get(self._path + "{token}", self._serve)

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        file_id = self._signer.verify(request.match_info["token"])
        if file_id is None:
            raise web.HTTPNotFound(text="This link is not valid (or has expired).")
        try:
            content, kind = await self._fetch(file_id)
        except DeliveryError as exc:
            if exc.permanent:  # the platform has no such file (any more): asking again won't help
                words = f"{self._platform} does not have this file (any more): {exc}"
                raise web.HTTPNotFound(text=words) from exc
            raise web.HTTPBadGateway(text=f"{self._platform} did not give the file: {exc}") from exc
        return web.Response(body=content, content_type=kind.split(";")[0])
