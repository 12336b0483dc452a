"""The inbox's side of public conversations (comments and mentions): the words the conversation
page shows for them, and hiding or unhiding a public message (``POST /inbox/c/{id}/hide`` with
``message_id`` and ``hidden`` 1 or 0).

What the page shows of a public conversation is :class:`carebot.store.public_items.PublicView`
(the post, each public message, what happened to it); this module adds what is the desk's: the
bot's plan in words ("Shadow mode: carebot would have replied publicly: «...»"), the signature
an agent's public reply gets (``[public] agent_signature``), and a refusal (the personal-data
guard's, a platform's rule: :class:`carebot.exceptions.PublicRefused`) in words for the agent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from carebot.agents import AgentDesk
from carebot.config import PublicSettings
from carebot.desk.auth import Session
from carebot.exceptions import PublicRefused, StoreError
from carebot.public.actions import ACTION_WORDS
from carebot.store.public_items import PublicView

Action = Callable[[web.Request, Session, Any], Awaitable[web.StreamResponse]]
ShowError = Callable[[web.Request, Session, str], Awaitable[web.StreamResponse]]

CATEGORY_WORDS = {
    "care_request": "care request",
    "complaint": "complaint",
    "praise": "praise",
    "spam": "spam",
    "chatter": "chatter",
}
# How an outgoing public action reads in the transcript (MessageView.public_action).
ACTION_LABELS = {kind.value: words.capitalize() for kind, words in ACTION_WORDS.items()}
_WOULD = {
    "reply": "replied publicly",
    "private_reply": "replied privately",
    "hide": "hidden it",
    "unhide": "unhidden it",
}
_NOT_DONE = {
    "reply": "Not posted in public",
    "private_reply": "Not sent privately",
    "hide": "Not hidden",
    "unhide": "Not unhidden",
}


def plan_lines(plan: dict[str, Any] | None) -> list[str]:
    """The bot's plan for one public message (decision details "public"), in words: what it
    would have done in shadow mode, and what kept an answer from going out in public. What it
    did do shows in the transcript (the public actions' own lines)."""
    if not plan:
        return []
    lines = []
    for step in plan.get("shadowed") or []:
        kind, text = str(step.get("kind", "")), str(step.get("text", ""))
        done = _WOULD.get(kind, kind.replace("_", " "))
        if text:
            line = f"Shadow mode: carebot would have {done}: «{text}»"
        else:
            why = str(step.get("why") or "")
            line = f"Shadow mode: carebot would have {done}" + (f" ({why})" if why else "")
        lines.append(line)
    if plan.get("blocked"):
        lines.append(f"Not answered in public: {plan['blocked']}")
    return lines


def refused_words(action: str, reason: str) -> str:
    """A public action's refusal as the agent reads it: what was not done, and why."""
    if reason.startswith("Not "):  # the personal-data guard says it all already
        return reason
    words = f"{_NOT_DONE.get(action, 'Not done')}: {reason}"
    return words if words.endswith(".") else f"{words}."


def item_word(view: PublicView | None) -> str:
    """What the customer's latest public message is (comment, mention, reply, post)."""
    latest = view.latest if view is not None else None
    return latest.kind if latest is not None else "comment"


class PublicDesk:
    def __init__(self, *, desk: AgentDesk, settings: PublicSettings, show_error: ShowError):
        self._desk = desk
        self._settings = settings
        self._show_error = show_error

    def actions(self) -> dict[str, Action]:
        """The form actions by path under ``/inbox/c/{id}/``."""
        return {"hide": self._hide}

    def signature(self, agent: str) -> str:
        """What the brand adds to ``agent``'s public replies ("" for none)."""
        return self._settings.signed("", agent).strip()

    def context(self, view: PublicView | None, agent: str) -> dict[str, Any] | None:
        """What the conversation page shows of a public conversation (None: a private one)."""
        if view is None:
            return None
        return {
            "view": view,
            "latest": view.latest,
            "item_word": item_word(view),
            "signature": self.signature(agent),
            "plans": {item.message_id: plan_lines(item.plan) for item in view.items},
            "categories": CATEGORY_WORDS,
            "actions": ACTION_LABELS,
        }

    async def _hide(self, request: web.Request, session: Session, form: Any) -> web.StreamResponse:
        conversation_id = int(request.match_info["id"])
        message_id, hidden = form.number("message_id"), str(form.get("hidden", ""))
        if hidden not in ("0", "1"):
            raise web.HTTPBadRequest(text=f"hidden must be 1 (hide) or 0 (unhide), not {hidden!r}")
        try:
            await self._desk.set_hidden(
                conversation_id,
                session.agent.display_name,
                message_id=message_id,
                hidden=hidden == "1",
                why=str(form.get("why", "")).strip()[:200],
            )
        except PublicRefused as refused:
            action = "hide" if hidden == "1" else "unhide"
            return await self._show_error(request, session, refused_words(action, refused.reason))
        except StoreError as exc:
            return await self._show_error(request, session, str(exc))
        raise web.HTTPSeeOther(f"/inbox/c/{conversation_id}#p{message_id}")
