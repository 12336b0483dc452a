"""The inbox's pages and actions under ``/inbox``, rendered on the server (Jinja2, autoescaped).

Every POST carries the session's CSRF token; every page but the login needs a session (kept
in the database, :class:`carebot.desk.auth.Sessions`); failed logins are throttled
(:mod:`carebot.desk.throttle`). Live updates go over the ``/inbox/events`` WebSocket (a
foreign ``Origin`` is refused) as ``{"type": "changed", "conversation_id"}``;
the page script then re-fetches the parts that changed. While an agent types a reply, the page
posts to ``/inbox/c/{id}/typing`` (every few seconds at most): an ``agent_typing`` event that
the web chat shows its customer. ``GET /inbox/faq?q=words`` finds FAQ answers for the
conversation page's search box (JSON; :mod:`carebot.console.answer_search`).

The queue page's views, search and label filter are :mod:`carebot.desk.queue_view`; assigning,
internal notes and labels on a conversation are :mod:`carebot.desk.case_tools`. A ``handoff``
event on the live stream also says whether it is a new handoff in the agent's teams (for the
page's opt-in notification and chime).

Teams (README "Teams"): each open handoff shows how it stands against its team's first-response
target (:class:`carebot.teams.targets.FirstResponseTargets`), on the queue and the conversation
page; ``POST /inbox/c/{id}/transfer`` (``team``, ``note``) moves a conversation to another
team's queue (:meth:`carebot.agents.AgentDesk.transfer`: members of its team and leads only);
``POST /inbox/availability`` (``available`` 1 or 0) is the header's Available / Away switch
(round-robin assignment skips agents who are away).

Public conversations (comments and mentions, README "Public comments and mentions"): the page
shows the post and each public message (:mod:`carebot.desk.public_desk`); ``POST
/inbox/c/{id}/reply`` with ``private=1`` sends the reply as the comment's private reply instead
of under it; a refusal (the personal-data guard, a platform's rule) is shown above the reply
box with the agent's text kept; ``POST /inbox/c/{id}/hide`` hides or unhides a public message.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import WSMsgType, web

from carebot.agents import AgentDesk
from carebot.config import PublicSettings, language_codes
from carebot.console.answer_search import AnswerSearch
from carebot.desk.auth import Agents, Session, Sessions, login_csrf, same_origin
from carebot.desk.case_tools import CaseTools
from carebot.desk.forms import Form, posted, readable_addresses
from carebot.desk.pages import HERE, STATIC_PREFIX, Pages
from carebot.desk.public_desk import PublicDesk, refused_words
from carebot.desk.queue_view import QueueView
from carebot.desk.roster import Roster
from carebot.desk.throttle import Locked, LoginThrottle, client_address
from carebot.events import Event, EventHub
from carebot.exceptions import PublicRefused, StoreError
from carebot.store.assignments import Assignments
from carebot.store.emotion_labels import EmotionLabelStore
from carebot.store.handoffs import OwnedByColleague
from carebot.store.labels import ConversationLabels
from carebot.store.notes import Notes
from carebot.store.queue import AgentQueue
from carebot.store.teamwork import TeamworkStore
from carebot.teams.targets import FirstResponseTargets

log = logging.getLogger(__name__)
# Events an agent's live view may have queued before it is told to look again at everything
# (a busy service publishes several per customer message; the page refreshes on each anyway).
LIVE_QUEUE = 1000
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
FAQ_LIMIT, FAQ_MAX_LIMIT = 5, 20  # answers the search box shows by default, and at most


class AgentInbox:
    def __init__(
        self,
        *,
        agents: Agents,
        sessions: Sessions,
        throttle: LoginThrottle,
        desk: AgentDesk,
        queue: AgentQueue,
        labels: EmotionLabelStore,
        events: EventHub,
        intent_title: Callable[[str], str] = str,
        answers: AnswerSearch | None = None,
        public_url: str = "",
        roster: Roster | None = None,
        targets: FirstResponseTargets | None = None,  # None: no first-response targets shown
        teamwork: TeamworkStore | None = None,  # None: no Available / Away switch
        public: PublicSettings | None = None,  # the agents' signature on public replies
    ) -> None:
        self._agents = agents
        self._sessions = sessions
        self._throttle = throttle
        self._public_url = public_url  # an origin the live stream accepts besides the request's
        self._desk = desk
        self._queue = queue
        self._labels = labels
        self._events = events
        self._intent_title = intent_title
        self._answers = answers  # None: no FAQ search box (and no /inbox/faq)
        self._pages = Pages()
        self._sockets: set[web.WebSocketResponse] = set()
        self._roster = roster or Roster(agents={n: n for n in agents.names()})
        self._targets = targets
        self._teamwork = teamwork
        clock = queue.clock
        self._conversation_labels = ConversationLabels(queue.db, clock=clock)
        self._views = QueueView(queue, self._conversation_labels, self._roster, targets)
        self._tools = CaseTools(
            assignments=Assignments(queue.db, clock=clock),
            notes=Notes(queue.db, clock=clock),
            labels=self._conversation_labels,
            roster=self._roster,
            events=events,
            show_error=self._error_page,
        )
        self._public = PublicDesk(
            desk=desk, settings=public or PublicSettings(), show_error=self._error_page
        )

    def mount(self, app: web.Application) -> None:
        app.middlewares.append(readable_addresses)  # every route's, the platforms' too
        app.router.add_get("/inbox", self._page(self._queue_page))
        app.router.add_get("/inbox/login", self._login_form)
        app.router.add_post("/inbox/login", self._login)
        app.router.add_post("/inbox/logout", self._form(self._logout))
        app.router.add_get(r"/inbox/c/{id:\d+}", self._page(self._case_page))
        app.router.add_post("/inbox/availability", self._form(self._availability))
        app.router.add_post(r"/inbox/c/{id:\d+}/transfer", self._form(self._transfer))
        tools = {**self._tools.actions(), **self._public.actions()}
        for path, action in tools.items():  # before the desk's actions
            app.router.add_post(rf"/inbox/c/{{id:\d+}}/{path}", self._form(action))
        app.router.add_post(r"/inbox/c/{id:\d+}/{action}", self._form(self._act))
        app.router.add_get("/inbox/events", self._live)
        if self._answers is not None:
            app.router.add_get("/inbox/faq", self._faq)
        app.router.add_static(STATIC_PREFIX, HERE / "static")
        app.on_shutdown.append(self._close_sockets)

    # --- pages ---------------------------------------------------------------------------

    def _page(
        self, view: Callable[[web.Request, Session], Awaitable[web.StreamResponse]]
    ) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            session = await self._sessions.read(request)
            if session is None:
                raise web.HTTPSeeOther(f"/inbox/login?next={quote(request.path_qs)}")
            return await view(request, session)

        return handler

    async def _queue_page(self, request: web.Request, session: Session) -> web.StreamResponse:
        context = await self._views.context(request, session.agent)
        presence = await self._presence(session, request.path_qs)
        return self._pages.render(
            "queue.html", session, title="Inbox", presence=presence, **context
        )

    async def _presence(self, session: Session, here: str) -> dict[str, Any] | None:
        """The header's Available / Away switch: whether the agent said they are available,
        and the page to come back to (None: no teams store, no switch)."""
        if self._teamwork is None:
            return None
        available = await self._teamwork.available(session.agent.name)
        return {"available": available, "next": _safe_next(here)}

    async def _error_page(
        self, request: web.Request, session: Session, error: str
    ) -> web.StreamResponse:
        return await self._case_page(request, session, error=error)

    async def _case_page(
        self,
        request: web.Request,
        session: Session,
        *,
        error: str | None = None,
        reply_text: str = "",
        reply_error: str | None = None,
        owned_by: dict[str, str] | None = None,
    ) -> web.StreamResponse:
        try:
            case = await self._queue.case(int(request.match_info["id"]))
        except StoreError as exc:
            raise web.HTTPNotFound(text=str(exc)) from exc
        for item in case.top_intents:
            item["title"] = self._intent_title(item["intent"])
        handoff, target = case.handoff, None
        if self._targets is not None and handoff is not None and handoff["open"]:
            target = self._targets.status(
                handoff["team"], handoff["created"], handoff["first_reply_at"], self._queue.clock()
            )
        current = (handoff or {}).get("team") or self._roster.default_team
        transferred = request.query.get("transferred", "") if request.method == "GET" else ""
        return self._pages.render(
            "conversation.html",
            session,
            title=case.customer["name"],
            c=case,
            labels=await self._labels.of_conversation(case.id),
            error=error,
            reply_text=reply_text,  # an agent's reply that could not be sent is not lost
            reply_error=reply_error,  # why it was not posted (shown above the reply box)
            public=self._public.context(case.public, session.agent.display_name),
            owned_by=owned_by,  # a colleague has it: asked before taking it from them
            proposed=request.query.get("proposed", "") if request.method == "GET" else "",
            faq_search=self._answers is not None,
            roster=self._roster,
            target=target,
            transfer_to={n: t for n, t in self._roster.teams.items() if n != current},
            transferred=self._roster.teams.get(transferred, ""),  # the team, after a transfer
            presence=await self._presence(session, f"/inbox/c/{case.id}"),
            status=409 if error or reply_error or owned_by else 200,
        )

    async def _login_form(self, request: web.Request) -> web.StreamResponse:
        return self._login_page(request, error=None, status=200)

    def _login_page(
        self, request: web.Request, *, error: str | None, status: int
    ) -> web.StreamResponse:
        response = web.Response(status=status, content_type="text/html")
        csrf = login_csrf(request, response, secure=self._sessions.secure(request))
        response.text = self._pages.template("login.html").render(
            agent=None,
            csrf=csrf,
            static=STATIC_PREFIX,
            title="Log in",
            error=error,
            next=_safe_next(request.query.get("next", "/inbox")),
        )
        return response

    # --- forms ---------------------------------------------------------------------------

    async def _login(self, request: web.Request) -> web.StreamResponse:
        form = await posted(request)
        cookie = request.cookies.get("carebot_login", "")
        if not cookie or not _same(str(form.get("csrf", "")), cookie):
            raise web.HTTPForbidden(
                text="The login form expired or was not sent from this "
                "site (missing CSRF token). Reload the page."
            )
        name = str(form.get("name", ""))
        address = client_address(request, forwarded_for=self._throttle.forwarded_for)
        locked = await self._throttle.check(name, address)
        if locked is None:  # while locked, even the right password is not checked
            agent = await self._agents.verify(name, str(form.get("password", "")))
            if agent is not None:
                await self._throttle.succeeded(name, address)
                response = web.HTTPSeeOther(_safe_next(str(form.get("next", "/inbox"))))
                await self._sessions.start(response, agent, request)
                raise response
            locked = await self._throttle.failed(name, address)
            if locked is None:
                return self._login_page(request, error="Wrong name or password.", status=401)
        return self._locked_page(request, locked)

    def _locked_page(self, request: web.Request, locked: Locked) -> web.StreamResponse:
        response = self._login_page(request, error=locked.message, status=429)
        response.headers["Retry-After"] = str(locked.minutes * 60)
        return response

    def _form(
        self, action: Callable[[web.Request, Session, Any], Awaitable[web.StreamResponse]]
    ) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            session = await self._sessions.read(request)
            if session is None:
                raise web.HTTPUnauthorized(text="Log in again: your session has ended.")
            form = await posted(request)
            if not _same(str(form.get("csrf", "")), session.csrf):
                raise web.HTTPForbidden(text="Missing or wrong CSRF token: reload the page.")
            return await action(request, session, form)

        return handler

    async def _logout(
        self, request: web.Request, session: Session, form: Any
    ) -> web.StreamResponse:
        response = web.HTTPSeeOther("/inbox/login")
        await self._sessions.end(request, response)
        raise response

    async def _act(self, request: web.Request, session: Session, form: Any) -> web.StreamResponse:
        conversation_id = int(request.match_info["id"])
        agent = session.agent.display_name
        action = request.match_info["action"]
        if action == "typing":
            self._events.publish(Event("agent_typing", conversation_id, agent=agent))
            return web.Response(status=204)
        confirmed = form.get("from_colleague") == "1"  # "Take it over from Ann" was pressed
        private = form.get("private") == "1"  # "Reply privately" (a public conversation)
        try:
            if action == "reply":
                text = str(form.get("text", ""))
                await self._desk.reply(
                    conversation_id, agent, text, from_colleague=confirmed, private=private
                )
            elif action == "send-draft":
                await self._desk.send_draft(conversation_id, agent, from_colleague=confirmed)
            elif action == "take-over":
                await self._desk.take_over(conversation_id, agent, from_colleague=confirmed)
            elif action == "resolve":
                await self._desk.resolve(conversation_id, agent)
            elif action == "close":
                await self._desk.close(conversation_id, agent)
            elif action == "merge":
                await self._desk.merge(conversation_id, agent, str(form.get("other", "")))
            elif action == "label":
                message_id = _message_id(form)
                await self._desk.label_emotion(
                    message_id, agent, str(form.get("label", "")), conversation_id=conversation_id
                )
                raise web.HTTPSeeOther(f"/inbox/c/{conversation_id}#m{message_id}")
            else:
                raise web.HTTPNotFound(text=f"Unknown action {action!r}")
        except OwnedByColleague as exc:
            return await self._case_page(
                request,
                session,
                reply_text=str(form.get("text", "")),
                owned_by={"owner": exc.owner, "action": action, "private": "1" if private else ""},
            )
        except PublicRefused as refused:
            kind = "private_reply" if private else "reply"
            return await self._case_page(
                request,
                session,
                reply_error=refused_words(kind, refused.reason),
                reply_text=str(form.get("text", "")),
            )
        except StoreError as exc:
            return await self._case_page(
                request, session, error=str(exc), reply_text=str(form.get("text", ""))
            )
        target = "/inbox" if action in ("resolve", "close") else f"/inbox/c/{conversation_id}"
        raise web.HTTPSeeOther(target)

    async def _transfer(
        self, request: web.Request, session: Session, form: Any
    ) -> web.StreamResponse:
        """Move the conversation to another team's queue, with an optional note for them."""
        conversation_id = int(request.match_info["id"])
        team = str(form.get("team", "")).strip()
        if not team:
            return await self._error_page(
                request, session, "Choose the team to transfer this conversation to."
            )
        note = str(form.get("note", ""))
        try:
            await self._desk.transfer(conversation_id, session.agent.display_name, team, note=note)
        except StoreError as exc:
            return await self._error_page(request, session, str(exc))
        raise web.HTTPSeeOther(f"/inbox/c/{conversation_id}?{urlencode({'transferred': team})}")

    async def _availability(
        self, request: web.Request, session: Session, form: Any
    ) -> web.StreamResponse:
        """The agent says they are available for new handoffs (``available=1``) or away (0)."""
        value = str(form.get("available", ""))
        if value not in ("0", "1"):
            raise web.HTTPBadRequest(
                text=f"available must be 1 (available) or 0 (away), not {value!r}"
            )
        try:
            await self._desk.set_available(session.agent.name, value == "1")
        except StoreError as exc:
            raise web.HTTPConflict(text=str(exc)) from exc
        raise web.HTTPSeeOther(_safe_next(str(form.get("next", "/inbox"))))

    # --- FAQ answers for the reply ---------------------------------------------------------

    async def _faq(self, request: web.Request) -> web.StreamResponse:
        """The answers matching ``q`` (at most ``limit``, default 5), best first; in
        ``language`` where written."""
        if await self._sessions.read(request) is None:
            raise web.HTTPUnauthorized(text="Log in again: your session has ended.")
        assert self._answers is not None  # mounted only with a search
        words = request.query.get("q", "")
        limit = request.query.get("limit", str(FAQ_LIMIT))
        if not limit.isdigit() or not 1 <= int(limit) <= FAQ_MAX_LIMIT:
            raise web.HTTPBadRequest(
                text=f"limit must be a whole number from 1 to {FAQ_MAX_LIMIT}, not {limit!r}"
            )
        # the conversation's language (the page's badge): answers in it where written
        language = request.query.get("language") or None
        if language is not None and language not in language_codes():
            raise web.HTTPBadRequest(text=f"language must be an ISO 639-1 code, not {language!r}")
        hits = await self._answers.find(words, int(limit), language)
        return web.json_response(
            {"query": words, "hits": [hit.as_json() for hit in hits]},
            headers={"Cache-Control": "no-store"},
        )

    # --- live updates --------------------------------------------------------------------

    async def _live(self, request: web.Request) -> web.StreamResponse:
        if not same_origin(request, self._public_url):
            origin = request.headers.get("Origin")
            raise web.HTTPForbidden(
                text=f"The live inbox is only for pages of this site, not {origin!r}. Behind "
                "a proxy, set [server] public_url to the address agents open."
            )
        session = await self._sessions.read(request)
        if session is None:
            raise web.HTTPUnauthorized(text="Log in first.")
        ws = web.WebSocketResponse(heartbeat=30)
        await ws.prepare(request)
        self._sockets.add(ws)
        async with self._events.subscribe(size=LIVE_QUEUE) as queue:
            pump = asyncio.create_task(self._pump(ws, queue, session.agent.name))
            try:
                async for message in ws:
                    if message.type is WSMsgType.ERROR:
                        break
            finally:
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pump
                self._sockets.discard(ws)
        return ws

    async def _pump(self, ws: web.WebSocketResponse, queue: asyncio.Queue[Any], agent: str) -> None:
        while not ws.closed:
            event = await queue.get()
            if event.kind in ("agent_typing", "webchat_reply", "intents"):
                continue  # for the customer's web chat; nothing on these pages changed
            frame: dict[str, Any] = {
                "type": "changed",
                "kind": event.kind,
                "conversation_id": event.conversation_id,
            }
            if event.kind == "handoff":  # a new one in the agent's teams: a notification
                frame["handoff"] = await self._views.new_handoff(event.conversation_id, agent)
            await ws.send_json(frame)

    async def _close_sockets(self, _app: web.Application) -> None:
        for ws in list(self._sockets):
            await ws.close(code=1001, message=b"server shutting down")


def _message_id(form: Form) -> int:
    return form.number("message_id")


def _same(given: str, expected: str) -> bool:
    """Constant-time comparison that also takes non-ASCII input (refused, not a crash)."""
    return hmac.compare_digest(given.encode(), expected.encode())


def _safe_next(target: str) -> str:
    """Only the inbox's, insights' and console's own paths: never redirect a login elsewhere."""
    local = target.startswith(("/inbox", "/insights", "/console")) and not target.startswith("//")
    return target if local else "/inbox"
