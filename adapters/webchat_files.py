"""The web chat widget's files as served: ``widget.js`` with the configured texts written in,
its stylesheet, and the demo shop page.

The widget's texts (``[webchat.texts]`` and its ``[webchat.texts.<code>]`` tables) go into
``widget.js`` itself, so the widget has them from its first paint, before its socket is open; an
ETag lets browsers keep their copy. The widget chooses its language (README, "Languages").
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from carebot.config import WebChatTexts

STATIC = Path(__file__).resolve().parent / "static"
# The line of widget.js that the configured texts replace.
TEXTS_LINE = "const TEXTS = {}; // [webchat.texts] by language, written in by the server"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class WidgetFiles:
    def __init__(self, texts: WebChatTexts, default_language: str = "en") -> None:
        """``default_language``: ``[languages] default``, the language of ``[webchat.texts]``."""
        self._script = _script(texts, default_language)
        self._tag = f'"{hashlib.sha256(self._script).hexdigest()[:32]}"'

    def mount(self, app: web.Application) -> None:
        app.router.add_get("/chat/widget.js", self._widget)
        app.router.add_get("/chat/widget.css", file("widget.css"))

    async def _widget(self, request: web.Request) -> web.StreamResponse:
        headers = {"Cache-Control": "no-cache", "ETag": self._tag}
        if request.headers.get("If-None-Match") == self._tag:
            return web.Response(status=304, headers=headers)
        return web.Response(
            body=self._script, content_type="text/javascript", charset="utf-8", headers=headers
        )


def file(name: str) -> Handler:
    """A static file of the widget's folder (``demo.html``...), checked again on every load."""

    async def handler(_request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / name, headers={"Cache-Control": "no-cache"})

    return handler


def _script(texts: WebChatTexts, default_language: str) -> bytes:
    source = (STATIC / "widget.js").read_text(encoding="utf-8")
    if source.count(TEXTS_LINE) != 1:
        raise RuntimeError(f"{STATIC / 'widget.js'} must hold the line {TEXTS_LINE!r} once")
    by_language = {default_language: texts.texts()}
    by_language |= {code: texts.in_language(code).texts() for code in texts.languages}
    written = json.dumps(
        {"default": default_language, "by_language": by_language}, ensure_ascii=True
    )
    return source.replace(TEXTS_LINE, f"const TEXTS = {written};").encode("utf-8")
