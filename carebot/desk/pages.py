"""The built-in inbox's HTML pages: its Jinja templates, rendered for a logged-in agent (the
inbox and the leads' /insights share them, with the same header and static files)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from carebot.desk.auth import Session
from carebot.nlu.language import language_name

HERE = Path(__file__).resolve().parent
STATIC_PREFIX = "/inbox/static"


class Pages:
    def __init__(self) -> None:
        self._templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self._templates.filters["language_name"] = language_name

    def template(self, name: str) -> jinja2.Template:
        return self._templates.get_template(name)

    def render(
        self, name: str, session: Session, *, status: int = 200, **context: Any
    ) -> web.Response:
        """The page ``name`` for ``session``'s agent (never cached: it shows customer data)."""
        context.setdefault("error", None)
        html = self.template(name).render(
            agent={
                "name": session.agent.name,
                "display_name": session.agent.display_name,
                "roles": session.agent.roles,
            },
            csrf=session.csrf,
            static=STATIC_PREFIX,
            **context,
        )
        return web.Response(
            text=html,
            content_type="text/html",
            status=status,
            headers={"Cache-Control": "no-store"},
        )
