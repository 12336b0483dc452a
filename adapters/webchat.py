"""The web chat channel: a widget a site adds with one ``<script>`` tag, over a WebSocket.

Translation only: WebSocket frames -> :class:`InboundMessage`; :class:`OutboundReply` -> frames.

Protocol (JSON text frames on ``/chat/ws``):

* client ``{"type": "hello", "token": <token or null>, "prechat": <the site's data-prechat or
  null>, "pass": <pre-chat pass or null>, "page": {"url", "title"}, "language": <the widget's
  ISO 639-1 code or null>, "languages": [the site's data-language and the browser's languages,
  preferred first]}`` first (all but ``type`` optional). The server answers
  ``{"type": "welcome", "token", "history": [message...], "max_chars", "status", "prechat":
  {"mode", "fields", "done"}}``; the token is a signed
  visitor id kept by the browser, so a reload or reconnect resumes the same conversation. A
  forged, altered or expired token gets ``{"type": "error", "code": "bad_token"}`` and the
  socket is closed (4401): nobody reads or writes another visitor's conversation. When the
  history cannot be read now (the store is busy or down), the socket is closed with 1013 (try
  again later) and the widget connects again.
* ``prechat.mode`` is ``"off"``, ``"optional"`` or ``"required"``: ``[webchat] prechat``, or
  the site's choice when that is "optional" (:meth:`WebChatSettings.prechat_for`).
  ``fields`` are the fields it asks for, ``done`` whether this visitor has filled them in (a
  valid ``pass``). While a required form is not done, messages are refused with
  ``prechat_required`` (nothing stored).
* client ``{"type": "page", "url", "title"}`` when the page changes (single-page sites): no
  answer. The page (http(s) only, without fragment) and the browser (from the User-Agent) go
  into the visitor's profile for agents (:mod:`carebot.adapters.webchat_visitor`).
* ``status`` is whether the care team is at work now (``[business_hours]``):
  ``{"online": bool, "text", "next_open": <ISO time or null>}``, or null when
  ``[webchat] show_status`` is off. The client asks again with ``{"type": "status"}`` (on
  opening the panel, and every few minutes while it is open); the answer is
  ``{"type": "status", "status"}``.
* client ``{"type": "contact", "name", "phone", "email"}`` (each optional, at least one): the
  contact form, and the pre-chat form. The server answers ``{"type": "contact_saved"}``
  (with ``"pass"`` once the details fill the pre-chat form's fields: a signed token the
  widget sends with its next hellos); a phone number or e-mail address the customer also uses
  on another channel links the two. A malformed e-mail address is refused (``bad_email``).
* client ``{"type": "message", "id": <client uuid>, "text": ...}``; the id makes a resend after
  a reconnect harmless (the core deduplicates it). The server answers ``{"type": "typing",
  "on": true}`` while the bot works, then ``{"type": "ack", "id", "at"}`` once the message is
  stored and handled, or 5 s after it was stored while it is still being handled (the widget
  forgets an acknowledged message, so an ack before it is stored would lose it if the worker
  died meanwhile). Replies are pushed as soon as they are sent, so the reply may come just
  before the ack (while the reply's delivery is being recorded); they are not held back for
  it: a reply to the tab's previous message, sent while this one waits for its conversation,
  would wait with it (up to those 5 s).
* server ``{"type": "typing", "on": true, "agent": "Ann"}``: an agent is typing a reply in the
  built-in inbox (sent again every few seconds while they type; the widget hides it when the
  news stop or a message arrives). Relayed from the ``agent_typing`` events of the
  :class:`~carebot.events.EventHub`, whichever worker the agent types to.
* server ``{"type": "message", "id", "author": "bot"|"agent"|"customer", "agent", "text",
  "choices": [{"id", "label"}], "handoff": bool, "at"}`` for every reply (and for the
  customer's own message in the visitor's other tabs). ``id`` is ``r<n>`` for a reply, the
  client's id for a customer's message: a tab shows a message once, however often it comes.
  Every ``at`` (here, in acks and in the history) is ISO 8601 UTC, e.g.
  ``2026-11-18T10:00:00.000Z``.
* server ``{"type": "error", "code": "bad_frame"|"empty"|"too_long"|"rate_limited"|
  "prechat_required"|"bad_email"|"bad_token", "message", "id"}``: nothing was stored; the
  socket stays open except for ``bad_token``; ``too_long`` also carries ``max_chars``.
  ``"unavailable"``: the message may be stored but could not be handled now; sending it again
  with the same id gets the answer (it is handled once). Refused messages may be sent again
  with the same id.

The widget's texts (``[webchat.texts]``, with their ``{placeholders}`` for the widget to fill,
and its ``[webchat.texts.<code>]`` tables) are written into ``/chat/widget.js`` as it is served
(:mod:`carebot.adapters.webchat_files`). The widget chooses its language (its site's
``data-language``, else the browser's) and names it in its hello (``"language"``); the server's
notices to that tab (errors, the header's status) are then in it, when there are texts in it.

Several workers: a visitor's tabs may be connected to any of them. A reply is stored, then
sent: the worker that sends it pushes it to the tabs connected to it and publishes a
``webchat_reply`` event; every other worker with a tab of that visitor reads the visitor's
latest messages from the store and pushes the ones its tabs have not seen (so do they on a
customer's message, for the visitor's other tabs, and on a ``resync``): one look at a time per
visitor (news meanwhile make one more look after it), several visitors at once. Every
:data:`BACKSTOP_SECONDS` they also look, in case an event was lost. A worker about to push a
reply whose predecessor its tabs have not shown (another worker sent it, and the event is late
or lost) reads the store first and pushes what they missed before it: tabs show replies in the
order they were sent.

Stopping (shutdown): new sockets are refused (503) and frames that arrive are not taken (nor
acknowledged: the widget sends them again after it reconnects); the frames in hand are
finished, their replies pushed, and then every socket is closed with 1001 (going away). The
widget reconnects, to whoever serves next, and shows the history: a reply sent after the
sockets closed is in it. Replies can be sent until :meth:`WebChatChannel.close`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web

from carebot.adapters.payloads import too_deep
from carebot.adapters.user_agent import browser_label
from carebot.adapters.webchat_files import WidgetFiles, file
from carebot.adapters.webchat_visitor import EMAIL, Tab, browser_languages
from carebot.channel import Deliver
from carebot.clock import Clock, utcnow
from carebot.config import MessageSettings, WebChatSettings, WebChatTexts, fill
from carebot.events import RESYNC, Event, EventHub
from carebot.exceptions import DeliveryError
from carebot.hours import ENGLISH, BusinessHours
from carebot.models import ContactDetails, InboundMessage, OutboundReply, TranscriptLine
from carebot.signing import Signer
from carebot.tasks import OnePerKey

log = logging.getLogger(__name__)
Transcript = Callable[[str], Awaitable[list[TranscriptLine]]]
# A conversation's web chat visitor, or None when the conversation is on another channel.
VisitorOf = Callable[[int], Awaitable[str | None]]
# The outbox id of a conversation's reply before the given one (None: it is the first).
ReplyBefore = Callable[[int, int], Awaitable[int | None]]
# The outbox id of each visitor's latest reply (visitors without one are left out).
LatestReplies = Callable[[list[str]], Awaitable[dict[str, int]]]
MAX_FRAME_BYTES = 64 * 1024
BAD_TOKEN_CLOSE = 4401
TRY_AGAIN_CLOSE = 1013  # the history could not be read now: the widget connects again
STOP_GRACE = 10.0  # seconds a stop waits for the frames in hand
CONTACT_MAX_CHARS = 200
BACKSTOP_SECONDS = 30.0  # several workers: how often the tabs' messages are checked anyway
SHOWN_PER_VISITOR = 300  # the message ids remembered per visitor (more than the history shows)
REFRESH_LINES = 50  # the latest messages a look at the store pushes from
# Several workers: visitors whose news from other workers are read at once (one look at a time
# per visitor), by default. One at a time, the relay fell seconds behind under load (chaos
# bench: replies relayed to tabs here up to 2.8 s late while this worker was busy).
LOOKS_AT_ONCE = 4
VISITORS_KNOWN = 10_000  # conversations whose visitor is remembered
PASS_SUFFIX = "\nprechat"  # a pre-chat pass signs "<visitor>\nprechat" (no visitor id has \n)


class FrameError(Exception):
    def __init__(self, code: str, message: str, *, frame_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.frame_id = frame_id


class WebChatChannel:
    name = "webchat"

    def __init__(
        self,
        *,
        settings: WebChatSettings,
        signer: Signer,
        transcript: Transcript,
        hours: BusinessHours | None = None,
        events: EventHub | None = None,
        visitor_of: VisitorOf | None = None,
        reply_before: ReplyBefore | None = None,
        latest_replies: LatestReplies | None = None,
        history: Transcript | None = None,
        looks_at_once: int = LOOKS_AT_ONCE,
        default_language: str = "en",
        messages: MessageSettings = ENGLISH,
        clock: Clock = utcnow,
    ) -> None:
        """``hours``: the widget's header says whether the team is at work (none: it says
        nothing). ``events`` and ``visitor_of``: agents typing in the inbox are shown to the
        visitor of the conversation. ``reply_before``: with several workers, a reply whose
        predecessor the tabs here have not shown is pushed after it (read from the store unless
        the reply's writer knew it), so tabs show replies in order even when another worker's
        event came late or was lost.
        ``latest_replies``: a look at every visitor (the backstop, a resync) reads the messages
        only of those whose latest reply the tabs here lack, found in one query. ``history``:
        what a tab saying hello is shown (default: ``transcript``, which the pushes read too);
        the service gives one that waits its turn when many tabs come back at once.
        ``looks_at_once``: how many visitors' news from other workers are read at once (each
        read holds a connection of the pool). ``default_language``: ``[languages] default``,
        the language of ``[webchat.texts]``; a tab speaks the language its widget chose when
        ``[webchat.texts.<code>]`` has it. ``messages``: how ``{next_open}`` is written in each
        language ([messages] next_open_*)."""
        self._settings = settings
        self._signer = signer
        self._transcript = transcript
        self._history = history or transcript
        self._hours = hours
        self._events = events
        self._visitor_of = visitor_of
        self._reply_before = reply_before
        self._latest_replies = latest_replies
        self._clock = clock
        self._relay: asyncio.Task[None] | None = None
        self._looks = OnePerKey(
            self._refresh,
            limit=looks_at_once,
            what="showing what other workers stored to visitor",
            log=log,
        )
        self._default_language = default_language
        self._messages = messages
        self._files = WidgetFiles(settings.texts, default_language)
        self._subscription = contextlib.AsyncExitStack()
        self._deliver: Deliver | None = None
        self._sockets: dict[str, set[web.WebSocketResponse]] = defaultdict(set)
        self._tabs: dict[web.WebSocketResponse, Tab] = {}
        # Per visitor with a tab here: the ids of the messages its tabs have (ordered, trimmed).
        self._shown: dict[str, dict[str, None]] = defaultdict(dict)
        self._visitors: dict[int, str | None] = {}  # conversation -> its visitor (or None)
        self._recent: dict[str, deque[float]] = defaultdict(deque)
        self._receiving = False
        self._closed = False
        self._in_hand = 0  # frames being handled right now
        self._handled = asyncio.Condition()
        # Per visitor, one list per tab saying hello: the messages pushed to the visitor's
        # other tabs here while its history is read (it gets those its history lacks).
        self._joining: dict[str, list[list[dict[str, Any]]]] = defaultdict(list)

    def mount(self, app: web.Application) -> None:
        app.router.add_get("/chat/ws", self._socket)
        self._files.mount(app)

    def demo_page(self) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        return file("demo.html")

    async def start(self, deliver: Deliver) -> None:
        self._deliver = deliver
        self._receiving = True
        if self._events is not None and self._visitor_of is not None and self._relay is None:
            queue = await self._subscription.enter_async_context(self._events.subscribe())
            self._relay = asyncio.create_task(self._follow(queue), name="webchat-events")

    async def stop(self) -> None:
        """Take no new frame, finish those in hand, then close every socket (1001)."""
        self._receiving = False
        if self._relay is not None:
            self._relay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._relay
            await self._looks.stop()
            await self._subscription.aclose()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STOP_GRACE), self._handled:
                await self._handled.wait_for(lambda: self._in_hand == 0)
        sockets = [ws for group in self._sockets.values() for ws in group]
        await asyncio.gather(
            *(ws.close(code=1001, message=b"server shutting down") for ws in sockets)
        )

    async def close(self) -> None:
        """Stop (if need be); sending is refused from here on."""
        await self.stop()
        self._closed = True

    async def send(self, reply: OutboundReply) -> None:
        """Push to every open tab of the visitor; offline visitors see it in their history."""
        if self._closed:
            raise DeliveryError("the web chat channel is closed")
        reply_id = f"r{reply.outbox_id}"
        frame = {
            "type": "message",
            "id": reply_id,
            "author": reply.author,
            "agent": reply.agent,
            "text": reply.text,
            "choices": [{"id": c.id, "label": c.label} for c in reply.choices],
            "handoff": reply.handoff,
            "at": _iso(reply.created_at or self._clock()),
        }
        visitor = reply.external_user_id
        pushed = False
        if await self._missed_before(reply):
            await self._refresh(visitor)  # what they missed, oldest first (this one among them)
            pushed = reply_id in self._shown.get(visitor, {})
        if not pushed:
            self._mark_shown(visitor, [reply_id])
            await self._broadcast(visitor, frame)
        if self._events is not None and reply.conversation_id is not None:
            # For the visitor's tabs on other workers (published to the others only: the
            # tabs here have it).
            self._events.publish(Event("webchat_reply", reply.conversation_id, ref=reply.outbox_id))

    async def _missed_before(self, reply: OutboundReply) -> bool:
        """Several workers: whether the visitor's tabs here lack the reply before this one
        (another worker sent it, and its event has not come, or was lost)."""
        if (
            self._reply_before is None
            or self._events is None
            or not self._events.shared
            or reply.conversation_id is None
            or not self._sockets.get(reply.external_user_id)
        ):
            return False
        before = reply.previous  # known when the reply was just written (0: none before it)
        if before is None:
            try:
                before = await self._reply_before(reply.conversation_id, reply.outbox_id)
            except Exception:
                log.warning("Cannot tell what came before reply %s; pushing it", reply.outbox_id)
                return False
        shown = self._shown.get(reply.external_user_id, {})
        return bool(before) and f"r{before}" not in shown

    def status(self, language: str | None = None) -> dict[str, Any] | None:
        """Whether the care team is at work now, as the widget's header shows it, in
        ``language`` (None: the default's)."""
        if self._hours is None or not self._settings.show_status:
            return None
        now, texts = self._clock(), self._settings.texts.in_language(language)
        if self._hours.is_open(now):
            return {"online": True, "text": texts.online, "next_open": None}
        start = self._hours.next_open(now)
        said = self._messages.in_language(language)
        text = fill(texts.offline, next_open=self._hours.describe_next_open(now, said))
        return {"online": False, "text": text, "next_open": _iso(start) if start else None}

    @property
    def connected(self) -> int:
        return sum(len(group) for group in self._sockets.values())

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if self._settings.allowed_origins and origin not in self._settings.allowed_origins:
            raise web.HTTPForbidden(text=f"Origin {origin!r} may not use this chat")
        if not self._receiving:
            raise web.HTTPServiceUnavailable(text="the chat is restarting; connect again")
        ws = web.WebSocketResponse(heartbeat=30, max_msg_size=MAX_FRAME_BYTES)
        try:
            await ws.prepare(request)
        except ConnectionError:
            log.debug("A web chat tab went away before its socket opened")
            # Not the half-opened socket: aiohttp would end it with write_eof, which raises
            # "Call .prepare() first" (108 such errors in a chaos run); a plain response's
            # write to the closed connection is a ConnectionError aiohttp takes quietly.
            return web.Response(status=499, text="client closed the connection")
        visitor: str | None = None
        self._tabs[ws] = Tab(browser=browser_label(request.headers.get("User-Agent")))
        try:
            async for message in ws:
                if message.type is not WSMsgType.TEXT or not self._receiving:
                    continue  # after stop: the widget sends it again once it has reconnected
                self._in_hand += 1
                try:
                    visitor = await self._frame(ws, visitor, message.data)
                finally:
                    self._in_hand -= 1
                    async with self._handled:
                        self._handled.notify_all()
        finally:
            del self._tabs[ws]
            if visitor is not None:
                self._sockets[visitor].discard(ws)
                if not self._sockets[visitor]:
                    del self._sockets[visitor]
                    self._shown.pop(visitor, None)
                    recent = self._recent.get(visitor)
                    if recent is not None and (not recent or self._seconds() - recent[-1] > 60):
                        del self._recent[visitor]  # nothing left to limit: forget the visitor
        return ws

    async def _frame(self, ws: web.WebSocketResponse, visitor: str | None, data: str) -> str | None:
        """Handle one frame; the socket's visitor (known once it said hello)."""
        try:
            frame = _parse(data)
            if visitor is None:
                visitor = await self._hello(ws, frame)
            elif frame.get("type") == "contact":
                await self._contact(ws, visitor, frame)
            elif frame.get("type") == "status":
                await ws.send_json(
                    {"type": "status", "status": self.status(self._tabs[ws].language)}
                )
            elif frame.get("type") == "page":
                if self._tabs[ws].see_page(frame):
                    await self._record_page(visitor, ws)
            else:
                await self._message(ws, visitor, frame)
        except FrameError as error:
            reply: dict[str, Any] = {"type": "error", "code": error.code, "message": str(error)}
            if error.frame_id:
                reply["id"] = error.frame_id
            if error.code == "too_long":
                reply["max_chars"] = self._settings.max_message_chars
            await ws.send_json(reply)
            if error.code == "bad_token":
                await ws.close(code=BAD_TOKEN_CLOSE, message=b"bad token")
        return visitor

    async def _hello(self, ws: web.WebSocketResponse, frame: dict[str, Any]) -> str | None:
        if frame.get("type") != "hello":
            raise FrameError("bad_frame", "Send a hello frame first.")
        token = frame.get("token")
        if token:
            visitor = self._signer.verify(str(token))
            if visitor is None or "\n" in visitor:  # ("\n": a pre-chat pass, not a token)
                raise FrameError("bad_token", "This chat session is not valid any more.")
        else:
            visitor = f"v-{uuid.uuid4().hex}"
        pushed: list[dict[str, Any]] = []  # to the other tabs here meanwhile
        self._joining[visitor].append(pushed)
        try:
            history = await self._history(visitor) if token else []
        except Exception:
            log.warning(
                "Cannot read visitor %s's messages for their tab; it connects again", visitor
            )
            await ws.close(code=TRY_AGAIN_CLOSE, message=b"try again later")
            return None
        finally:
            self._stop_joining(visitor, pushed)
        frames = [_line_frame(line, visitor) for line in history]
        in_history = {f["id"] for f in frames}
        later = [f for f in pushed if f["id"] not in in_history]  # stored after the read
        tab = self._tabs[ws]
        tab.language = self._language_of(frame.get("language"))
        tab.languages = browser_languages(frame.get("languages"))
        tab.prechat = self._settings.prechat_for(frame.get("prechat"))
        given = frame.get("pass")
        tab.prechat_done = isinstance(given, str) and (
            self._signer.verify(given) == visitor + PASS_SUFFIX
        )
        tab.known = bool(history) or any(t.known for t in self._tabs_of(visitor))
        # What the visitor's other tabs here have not seen yet (stored by another worker whose
        # event was lost): they get it now, as the new tab gets it in its history.
        shown = self._shown.get(visitor, {}) if self._sockets.get(visitor) else None
        unseen = [f for f in frames if shown is not None and f["id"] and f["id"] not in shown]
        self._sockets[visitor].add(ws)
        self._mark_shown(visitor, [f["id"] for f in frames if f["id"]])
        welcome = {
            "type": "welcome",
            "token": self._signer.sign(visitor, ttl=self._ttl),
            "history": frames + later,  # in one frame: nothing pushed meanwhile comes between
            "max_chars": self._settings.max_message_chars,
            "status": self.status(tab.language),
            "prechat": {
                "mode": tab.prechat,
                "fields": list(self._settings.prechat_fields),
                "done": tab.prechat_done,
            },
        }
        try:
            await ws.send_json(welcome)
            welcomed = True
        except (ConnectionError, RuntimeError):
            # The tab went away while its history was read (a browser that gave up): its
            # socket is forgotten once the loop reading it ends.
            log.debug("Web chat socket of %s closed before its welcome", visitor)
            welcomed = False
        for missed in unseen:  # marked shown above: the other tabs get them in any case
            await self._broadcast(visitor, missed, skip=ws)
        if welcomed and tab.see_page(frame.get("page")):
            await self._record_page(visitor, ws)
        return visitor

    def _language_of(self, asked: object) -> str | None:
        """The language a tab's widget chose, when there are texts in it (the default's or a
        table's); None for any other."""
        known = (self._default_language, *self._settings.texts.languages)
        return asked if isinstance(asked, str) and asked in known else None

    def _texts(self, tab: Tab) -> WebChatTexts:
        return self._settings.texts.in_language(tab.language)

    @property
    def _ttl(self) -> int:
        return self._settings.token_days * 86400

    def _stop_joining(self, visitor: str, pushed: list[dict[str, Any]]) -> None:
        waiting = self._joining[visitor]
        waiting.remove(pushed)
        if not waiting:
            del self._joining[visitor]

    def _tabs_of(self, visitor: str) -> list[Tab]:
        return [self._tabs[ws] for ws in self._sockets.get(visitor, ()) if ws in self._tabs]

    async def _record_page(self, visitor: str, ws: web.WebSocketResponse) -> None:
        """Keep the tab's page and browser with a visitor the store knows (for the others,
        they go with their first message or details)."""
        tab = self._tabs[ws]
        if not tab.known or self._deliver is None:
            return
        try:
            await self._deliver(ContactDetails(self.name, visitor, tab.profile()))
        except Exception:
            log.warning("Could not keep the page of visitor %s; the next change retries", visitor)

    async def _message(
        self, ws: web.WebSocketResponse, visitor: str, frame: dict[str, Any]
    ) -> None:
        tab = self._tabs[ws]
        text, message_id = self._validate(visitor, frame, tab)
        inbound = InboundMessage(
            channel=self.name,
            external_user_id=visitor,
            # Ids come from the browser: unique per visitor, so namespaced by the visitor.
            external_message_id=f"{visitor}:{message_id}",
            text=text,
            sent_at=self._clock(),
            profile=tab.profile(),
            raw=frame,
            language_hints=tab.languages,
        )
        self._mark_shown(visitor, [message_id])
        await self._broadcast(visitor, {"type": "typing", "on": True})
        echo: dict[str, Any] = {
            "type": "message",
            "id": message_id,
            "author": "customer",
            "agent": None,
            "text": text,
            "choices": [],
            "handoff": False,
            "at": _iso(inbound.sent_at),
        }
        await self._broadcast(visitor, echo, skip=ws)
        if self._deliver is None:
            raise RuntimeError("WebChatChannel.start() was not called before serving")
        try:
            await self._deliver(inbound)
        except Exception as exc:
            log.exception("Could not take web chat message %s", message_id)
            said = self._texts(tab).unavailable
            raise FrameError("unavailable", said, frame_id=message_id) from exc
        else:
            ack = {"type": "ack", "id": message_id, "at": _iso(inbound.sent_at)}
            await self._send_to(ws, visitor, ack)
        finally:
            await self._broadcast(visitor, {"type": "typing", "on": False})
        self._mark_known(visitor)

    def _mark_known(self, visitor: str) -> None:
        for tab in self._tabs_of(visitor):
            tab.known = True

    async def _contact(
        self, ws: web.WebSocketResponse, visitor: str, frame: dict[str, Any]
    ) -> None:
        """The optional contact form and the pre-chat form: kept with the visitor, so agents
        know who they are and the same person on other channels (same phone or e-mail) is
        recognised. Details that fill the pre-chat form's fields earn a pass."""
        profile, texts = {}, self._texts(self._tabs[ws])
        for key in ("name", "phone", "email"):
            value = frame.get(key)
            if value is not None and not isinstance(value, str):
                raise FrameError("bad_frame", f"{key} must be a string.")
            if value and value.strip():
                if len(value) > CONTACT_MAX_CHARS:
                    words = fill(texts.contact_too_long, limit=CONTACT_MAX_CHARS)
                    raise FrameError("too_long", words)
                profile[key] = value.strip()
        if not profile:
            raise FrameError("empty", texts.contact_missing)
        if "email" in profile and not EMAIL.match(profile["email"]):
            raise FrameError("bad_email", texts.contact_bad_email)
        if self._deliver is None:
            raise RuntimeError("WebChatChannel.start() was not called before serving")
        tab = self._tabs[ws]
        try:
            await self._deliver(ContactDetails(self.name, visitor, {**tab.profile(), **profile}))
        except Exception as exc:
            log.exception("Could not keep the contact details of %s", visitor)
            raise FrameError("unavailable", texts.contact_failed) from exc
        self._mark_known(visitor)
        tab.details.update(profile)
        saved: dict[str, Any] = {"type": "contact_saved"}
        if tab.prechat != "off" and tab.filled(self._settings.prechat_fields):
            for other in self._tabs_of(visitor):
                other.prechat_done = True
            saved["pass"] = self._signer.sign(visitor + PASS_SUFFIX, ttl=self._ttl)
        await ws.send_json(saved)

    def _validate(self, visitor: str, frame: dict[str, Any], tab: Tab) -> tuple[str, str]:
        if frame.get("type") != "message":
            raise FrameError("bad_frame", f"Unknown frame type {frame.get('type')!r}.")
        text, message_id = frame.get("text"), frame.get("id")
        if not isinstance(text, str) or not isinstance(message_id, str) or not message_id:
            raise FrameError("bad_frame", "A message needs a text and an id.")
        if len(message_id) > 100:
            raise FrameError("bad_frame", "The message id is too long.")
        text, texts = text.strip(), self._texts(tab)
        if not text:
            raise FrameError("empty", texts.empty, frame_id=message_id)
        limit = self._settings.max_message_chars
        if len(text) > limit:
            words = fill(texts.too_long, length=f"{len(text):,}", limit=f"{limit:,}")
            raise FrameError("too_long", words, frame_id=message_id)
        if tab.prechat == "required" and not tab.prechat_done:
            raise FrameError("prechat_required", texts.prechat_required, frame_id=message_id)
        recent = self._recent[visitor]
        now = self._seconds()
        while recent and now - recent[0] > 60:
            recent.popleft()
        if len(recent) >= self._settings.messages_per_minute:
            raise FrameError("rate_limited", texts.rate_limited, frame_id=message_id)
        recent.append(now)
        return text, message_id

    def _seconds(self) -> float:
        return self._clock().timestamp()

    async def _follow(self, events: asyncio.Queue[Event]) -> None:
        """Agents typing in the inbox, shown in the visitor's tabs; with several workers, what
        other workers stored for the visitors with a tab here (and a look every
        :data:`BACKSTOP_SECONDS`, in case an event was lost)."""
        loop = asyncio.get_running_loop()
        backstop = loop.time() + BACKSTOP_SECONDS
        while True:
            # Checked here, not only when no event comes: a busy queue never lets a wait time out.
            left = backstop - loop.time()
            if left <= 0:
                backstop = loop.time() + BACKSTOP_SECONDS
                event = Event(RESYNC, 0) if self._events and self._events.shared else None
            else:
                try:
                    async with asyncio.timeout(left):
                        event = await events.get()
                except TimeoutError:
                    continue
            if event is None or not self._sockets:
                continue
            try:
                await self._on_event(event)
            except Exception:  # the relay must outlive whatever it meets: the next look retries
                log.exception("Could not show web chat visitors event %s", event)

    async def _on_event(self, event: Event) -> None:
        if event.kind == RESYNC:
            await self._refresh_all()
        elif event.kind == "agent_typing":
            visitor = await self._visitor(event.conversation_id)
            if visitor is not None:
                frame = {"type": "typing", "on": True, "agent": event.agent or None}
                await self._broadcast(visitor, frame)
        elif event.remote and event.kind in ("webchat_reply", "customer_message"):
            visitor = await self._visitor(event.conversation_id)
            if visitor is not None and visitor in self._sockets:
                self._looks.ask(visitor)

    async def _visitor(self, conversation_id: int) -> str | None:
        """The conversation's web chat visitor (None: another channel's, or unknown now)."""
        if conversation_id in self._visitors:
            return self._visitors[conversation_id]
        assert self._visitor_of is not None
        try:
            visitor = await self._visitor_of(conversation_id)
        except Exception:
            log.warning("Cannot tell who is in conversation %s", conversation_id)
            return None
        if len(self._visitors) >= VISITORS_KNOWN:
            self._visitors.clear()
        self._visitors[conversation_id] = visitor  # a conversation's customer never changes
        return visitor

    async def _refresh_all(self) -> None:
        visitors = list(self._sockets)
        if self._latest_replies is not None and visitors:
            try:
                latest = await self._latest_replies(visitors)
            except Exception:
                log.warning("Cannot look at the visitors' latest replies; the next look retries")
                return
            visitors = [
                v for v in visitors if v in latest and f"r{latest[v]}" not in self._shown[v]
            ]
        for visitor in visitors:
            self._looks.ask(visitor)

    async def _refresh(self, visitor: str) -> None:
        """Push the visitor's latest messages its tabs here have not seen, oldest first."""
        if visitor not in self._sockets:
            return  # their last tab here closed while the look waited its turn
        try:
            lines = await self._transcript(visitor)
        except Exception:
            log.warning("Cannot read visitor %s's messages; the next look retries", visitor)
            return
        shown = self._shown[visitor]
        for line in lines[-REFRESH_LINES:]:
            frame = _line_frame(line, visitor)
            if frame["id"] and frame["id"] not in shown:
                self._mark_shown(visitor, [frame["id"]])
                await self._broadcast(visitor, frame)

    def _mark_shown(self, visitor: str, ids: list[str]) -> None:
        if visitor not in self._sockets:
            return  # no tab here: nothing to remember
        shown = self._shown[visitor]
        for frame_id in ids:
            shown[frame_id] = None
        while len(shown) > SHOWN_PER_VISITOR:
            del shown[next(iter(shown))]

    async def _broadcast(
        self, visitor: str, frame: dict[str, Any], *, skip: web.WebSocketResponse | None = None
    ) -> None:
        if frame.get("id") and visitor in self._joining:  # a message, while a tab says hello
            for pushed in self._joining[visitor]:
                pushed.append(frame)
        for ws in list(self._sockets.get(visitor, ())):
            if ws is not skip:
                await self._send_to(ws, visitor, frame)

    async def _send_to(
        self, ws: web.WebSocketResponse, visitor: str, frame: dict[str, Any]
    ) -> None:
        if not ws.closed:
            try:
                await ws.send_json(frame)
            except (ConnectionError, RuntimeError):
                log.debug("Web chat socket of %s closed while sending", visitor)


def _parse(data: str) -> dict[str, Any]:
    try:
        frame = json.loads(data)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
        raise FrameError("bad_frame", "Frames must be JSON objects.") from exc
    if not isinstance(frame, dict) or too_deep(frame):
        raise FrameError("bad_frame", "Frames must be JSON objects (nested a few levels deep).")
    return frame


def _line_frame(line: TranscriptLine, visitor: str) -> dict[str, Any]:
    if line.outbox_id is not None:
        frame_id: str | None = f"r{line.outbox_id}"
    else:
        frame_id = (line.external_id or "").removeprefix(f"{visitor}:") or None
    return {
        "type": "message",
        "id": frame_id,
        "author": line.author,
        "agent": line.agent,
        "text": line.text,
        "choices": [{"id": c.id, "label": c.label} for c in line.choices],
        "handoff": line.handoff,
        "at": _iso(line.at),
    }


def _iso(when: datetime) -> str:
    """ISO 8601 in UTC, to the millisecond (what browsers parse everywhere)."""
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
