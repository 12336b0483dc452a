"""The Telegram channel, over python-telegram-bot's ``Bot`` client.

Translation only: a Telegram update -> :class:`InboundMessage` (or :class:`ContactDetails` for a
shared contact); an :class:`OutboundReply` -> ``sendMessage``, with clarification choices as an
inline keyboard.

* **Receiving.** ``mode = "polling"`` (development: no public URL) long-polls ``getUpdates``;
  an update is confirmed (the next offset) only after the core stored it, so a failure delays it
  and never drops it. ``mode = "webhook"`` registers ``{public_url}/telegram/webhook`` with a
  secret token. Polling and registering the webhook are done by one worker, the leader
  (:meth:`TelegramChannel.start_leading`; the service decides when); every worker takes the
  webhook's calls and sends. Telegram's POSTs without that
  ``X-Telegram-Bot-Api-Secret-Token``, or whose ``Content-Type`` is not exactly
  ``application/json``, get 403 and are not processed, and an update the core could not store
  gets 500, so Telegram delivers it again.
* **What the customer sends.** Text; ``/start`` (greeted by the core); a button of a
  clarification (its label is the message); photos, voice notes, stickers, files, with their
  caption as text and a link agents can open (``/telegram/file/<signed id>``; the bot's token
  never appears in it); an edited message, as a new message (a redelivered edit is recognised);
  a shared contact (its phone number links the customer across channels). Group chats are
  ignored unless ``[telegram] groups = true``.
* **Sending.** Paced per chat and overall (about 1/s per chat, 30/s in all); ``RetryAfter`` is
  handed to the outbox with its delay, network errors and 5xx are retried, and a chat that
  blocked the bot is refused for good. The typing action shows while the bot works.
* Redelivered updates carry the same message id, which the core deduplicates.
* **Stopping.** :meth:`TelegramChannel.stop` ends receiving: polling finishes the update in
  hand, confirms it and polls no more; webhook calls that come after are answered 503 (Telegram
  delivers them again, to whoever serves next). Sending still works until
  :meth:`TelegramChannel.close` shuts the client down.
* A failure to poll or to store an update is retried with the backoff of
  :mod:`carebot.retry`; logs name the update by its id (its content, personal data, only at
  DEBUG).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import mimetypes
import warnings
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.constants import ChatAction, MessageLimit
from telegram.error import BadRequest, Forbidden, RetryAfter, TelegramError

from carebot.adapters.payloads import MAX_DEPTH, too_deep
from carebot.channel import Deliver
from carebot.config import TelegramSettings
from carebot.exceptions import DeliveryError
from carebot.file_links import FileLinks
from carebot.models import (
    Attachment,
    ChannelEvent,
    ContactDetails,
    InboundKind,
    InboundMessage,
    OutboundReply,
)
from carebot.pacing import Pacer
from carebot.retry import Backoff, repeat, retry
from carebot.signing import Signer

log = logging.getLogger(__name__)
ALLOWED_UPDATES = ("message", "edited_message", "callback_query")
WEBHOOK_PATH = "/telegram/webhook"
FILE_PATH = "/telegram/file/"
BACKOFF = Backoff(base=2.0, cap=60.0)  # polling, and storing an update, while they fail
STOP_GRACE = 10.0  # seconds a stop waits for the update in hand
MEDIA = ("photo", "voice", "audio", "video", "video_note", "animation", "sticker", "document")


class TelegramChannel:
    name = "telegram"

    def __init__(
        self,
        *,
        bot: Bot,
        settings: TelegramSettings,
        links: Signer,
        public_url: str = "",
        webhook_secret: str | None = None,
        pacer: Pacer | None = None,
    ) -> None:
        self._bot = bot
        self._settings = settings
        self._files = FileLinks(
            signer=links,
            public_url=public_url,
            path=FILE_PATH,
            platform="Telegram",
            fetch=self._fetch_file,
        )
        self._public_url = public_url.rstrip("/")
        self._secret = webhook_secret
        self._pacer = pacer or Pacer(
            settings.per_chat_per_second, overall_per_second=settings.overall_per_second
        )
        self._deliver: Deliver | None = None
        self._poller: asyncio.Task[None] | None = None
        self._offset: int | None = None
        self._stopping = False
        self._polling = False  # this worker polls (it leads)
        self._webhook_cleared = False
        self._closed = False
        self._handling = False  # an update is being handed to the core right now
        self._side_tasks: set[asyncio.Task[Any]] = set()

    def mount(self, app: web.Application) -> None:
        app.router.add_post(WEBHOOK_PATH, self._on_webhook)
        self._files.mount(app)

    async def start(self, deliver: Deliver) -> None:
        """Open the client (a wrong token fails here) and take webhook calls. Polling and
        registering the webhook are the leader's (:meth:`start_leading`)."""
        self._deliver = deliver
        await self._bot.initialize()  # getMe: a wrong token fails here, at start
        log.info("Telegram channel started (%s) as @%s", self._settings.mode, self._bot.username)

    async def start_leading(self) -> None:
        """What one worker does for all: poll ``getUpdates`` (two pollers conflict), or
        register the webhook (every worker takes its calls)."""
        if self._stopping:
            return
        if self._settings.mode == "webhook":
            await self._bot.set_webhook(
                f"{self._public_url}{WEBHOOK_PATH}",
                secret_token=self._secret,
                allowed_updates=list(ALLOWED_UPDATES),
            )
            log.info("Telegram webhook registered")
        elif self._poller is None:
            self._polling = True
            self._poller = asyncio.create_task(self._poll(), name="telegram-polling")
            log.info("Telegram polling started")

    async def stop_leading(self) -> None:
        """Stop polling: the update in hand is finished (and confirmed); a long poll is cut
        short. Harmless when not polling."""
        self._polling = False
        if self._poller is None:
            return
        if not self._handling:
            self._poller.cancel()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(self._poller, timeout=STOP_GRACE)
        self._poller = None
        if self._offset is not None and not self._closed:  # confirm what was handled
            try:
                await self._bot.get_updates(offset=self._offset, timeout=0)
            except TelegramError as exc:
                log.warning("Could not confirm the last Telegram updates: %s", exc)
        log.info("Telegram polling stopped")

    async def stop(self) -> None:
        """Stop receiving: polling stops (:meth:`stop_leading`); webhook calls from now on are
        answered 503."""
        self._stopping = True
        await self.stop_leading()

    async def close(self) -> None:
        """Shut the client down (after :meth:`stop`); sending is refused from here on."""
        await self.stop()
        if self._closed:
            return
        self._closed = True
        for task in list(self._side_tasks):  # courtesy calls (typing, button acks) still going
            task.cancel()
        await asyncio.gather(*self._side_tasks, return_exceptions=True)
        try:
            await self._bot.shutdown()
        except TelegramError as exc:
            log.warning("The Telegram client did not shut down cleanly: %s", exc)

    async def send(self, reply: OutboundReply) -> str | None:
        if self._closed:
            raise DeliveryError("the Telegram channel is closed")
        markup = None
        if reply.choices:
            markup = InlineKeyboardMarkup(
                [[InlineKeyboardButton(c.label, callback_data=c.id[:64])] for c in reply.choices]
            )
        message: Message | None = None
        chunks = _chunks(reply.signed_text(), MessageLimit.MAX_TEXT_LENGTH)
        for number, chunk in enumerate(chunks, start=1):
            await self._pacer.wait(reply.external_user_id)
            last = number == len(chunks)
            try:
                message = await self._bot.send_message(
                    reply.external_user_id, chunk, reply_markup=markup if last else None
                )
            except TelegramError as exc:
                raise _delivery_error(exc) from exc
        return str(message.message_id) if message else None

    # --- receiving -----------------------------------------------------------------------

    async def _poll(self) -> None:
        await repeat(
            self._poll_once,
            until=lambda: not self._polling,
            what="Telegram getUpdates",
            backoff=BACKOFF,
            log=log,
            expected=(TelegramError,),
            hint=_retry_after,
        )

    async def _poll_once(self) -> None:
        if not self._webhook_cleared:  # getUpdates refuses to run while a webhook is set
            await self._bot.delete_webhook()
            self._webhook_cleared = True
        updates = await self._bot.get_updates(
            offset=self._offset,
            timeout=int(self._settings.poll_timeout),
            allowed_updates=list(ALLOWED_UPDATES),
        )
        for update in updates:
            self._handling = True
            try:
                await self._take_until_stored(update)
            finally:
                self._handling = False
            self._offset = update.update_id + 1
            if not self._polling:
                return

    async def _take_until_stored(self, update: Update) -> None:
        """Polling confirms an update by asking for the next one: only once it is stored."""

        async def take() -> None:
            try:
                await self._take(update)
            except Exception:
                log.debug("Telegram update %s not taken: %r", update.update_id, update)
                raise

        what = f"Taking Telegram update {update.update_id}"
        await retry(take, what=what, backoff=BACKOFF, log=log)

    async def _on_webhook(self, request: web.Request) -> web.Response:
        if self._stopping:
            raise web.HTTPServiceUnavailable(text="shutting down; deliver again")
        given = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
        if not self._secret or not hmac.compare_digest(given.encode(), self._secret.encode()):
            log.warning("Refused a Telegram webhook call without the right secret token")
            raise web.HTTPForbidden(text="wrong or missing secret token")
        if request.headers.get("Content-Type") != "application/json":
            raise web.HTTPForbidden(text="Content-Type must be application/json")
        update = self._update(await request.read())
        try:
            await self._take(update)
        except Exception as exc:
            log.exception("Could not take Telegram update %s", update.update_id)
            raise web.HTTPInternalServerError(text="not stored; deliver again") from exc
        return web.Response(text="ok")

    def _update(self, raw: bytes) -> Update:
        """The webhook call's update; 400 naming the problem when the body is not one (the
        customer's words are logged at DEBUG only)."""
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
            raise web.HTTPBadRequest(text=f"not JSON: {type(exc).__name__}") from exc
        if too_deep(data):
            raise web.HTTPBadRequest(
                text=f"not a Telegram update: nested more than {MAX_DEPTH} levels"
            )
        if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
            raise web.HTTPBadRequest(text="not a Telegram update: an object with an update_id")
        try:
            # python-telegram-bot's parser raises whatever its types raise on values Telegram
            # never sends (a date past 9999, a chat that is a string...): nothing was taken.
            update = Update.de_json(data, self._bot)
            for key in ("message", "edited_message"):  # it lets a message lack its chat
                if getattr(update, key) is not None and getattr(update, key).chat is None:
                    raise ValueError(f"{key}: a message needs its 'chat'")
        except Exception as exc:
            log.warning("Refused a malformed Telegram update %s: %r", data["update_id"], exc)
            log.debug("The malformed Telegram update: %r", raw)
            words = f"not a Telegram update: {type(exc).__name__}: {exc}"[:300]
            raise web.HTTPBadRequest(text=words) from exc
        return update

    async def _take(self, update: Update) -> None:
        event = self.translate(update)
        if event is None:
            return
        if self._deliver is None:
            raise RuntimeError("TelegramChannel.start() was not called before receiving")
        if update.callback_query is not None:
            self._aside(update.callback_query.answer())
        if isinstance(event, InboundMessage) and event.text.strip():
            self._aside(self._bot.send_chat_action(event.external_user_id, ChatAction.TYPING))
        await self._deliver(event)

    def translate(self, update: Update) -> ChannelEvent | None:
        """The update as the core's event; None for what carebot does not handle."""
        query = update.callback_query
        if query is not None:
            return self._choice(update)
        message = update.message or update.edited_message
        if message is None or message.from_user is None or message.from_user.is_bot:
            return None
        if message.chat.type != "private" and not self._settings.groups:
            return None
        chat = str(message.chat.id)
        profile = _profile(message)
        contact = message.contact
        if contact is not None and contact.user_id == message.from_user.id:
            phone = contact.phone_number
            return ContactDetails(self.name, chat, {**profile, "phone": _plus(phone)})
        message_id = f"{chat}:{message.message_id}"
        if update.edited_message is not None and message.edit_date is not None:
            message_id += f":edited:{int(message.edit_date.timestamp())}"
        text = message.text or message.caption or ""
        start = text == "/start" or text.startswith("/start ")
        return InboundMessage(
            channel=self.name,
            external_user_id=chat,
            external_message_id=message_id,
            text=text,
            sent_at=message.edit_date or message.date,
            profile=profile,
            raw=update.to_dict(),
            kind=InboundKind.START if start else InboundKind.TEXT,
            attachments=self._attachments(message),
            language_hints=_hints(message.from_user.language_code),
        )

    def _choice(self, update: Update) -> InboundMessage | None:
        """A tapped button: the customer 'says' its label, as they would by typing it."""
        query = update.callback_query
        assert query is not None
        message = query.message
        if message is None or not isinstance(message, Message):
            return None
        if message.chat.type != "private" and not self._settings.groups:
            return None
        label = query.data or ""
        markup = message.reply_markup
        for row in markup.inline_keyboard if markup else ():
            for button in row:
                if button.callback_data == query.data:
                    label = button.text
        return InboundMessage(
            channel=self.name,
            external_user_id=str(message.chat.id),
            external_message_id=f"callback:{query.id}",
            text=label,
            sent_at=datetime.now(UTC),
            profile={"name": query.from_user.full_name},
            raw=update.to_dict(),
            language_hints=_hints(query.from_user.language_code),
        )

    def _attachments(self, message: Message) -> tuple[Attachment, ...]:
        found = []
        for kind in MEDIA:
            item = getattr(message, kind)
            if not item:
                continue
            if kind == "photo":
                item = item[-1]  # the largest size
            name = getattr(item, "file_name", None) or ""
            found.append(Attachment(kind, self._files.link(item.file_id), name))
        return tuple(found)

    async def _fetch_file(self, file_id: str) -> tuple[bytes, str]:
        """A customer's file, fetched from Telegram for an agent who opens its link."""
        try:
            file = await self._bot.get_file(file_id)
            content = await file.download_as_bytearray()
        except TelegramError as exc:
            raise _delivery_error(exc) from exc  # a wrong file id is a BadRequest: for good
        kind = mimetypes.guess_type(file.file_path or "")[0] or "application/octet-stream"
        return bytes(content), kind

    def _aside(self, call: Any) -> None:
        """Run a courtesy call (typing action, button ack) without waiting on it."""

        async def run() -> None:
            try:
                await call
            except TelegramError as exc:
                log.debug("Telegram courtesy call failed: %s", exc)

        task = asyncio.create_task(run())
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)


def _profile(message: Message) -> dict[str, str]:
    user = message.from_user
    assert user is not None
    profile = {"name": user.full_name}
    if user.username:
        profile["username"] = user.username
    return profile


def _plus(phone: str) -> str:
    phone = phone.strip()
    return phone if phone.startswith("+") else f"+{phone}"


def _chunks(text: str, limit: int) -> list[str]:
    return [text[i : i + limit] for i in range(0, len(text), limit)] or [text]


def _retry_after(exc: Exception) -> float | None:
    if not isinstance(exc, RetryAfter):
        return None
    with warnings.catch_warnings():  # PTB 22 warns that the int form is deprecated
        warnings.simplefilter("ignore")
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _delivery_error(exc: TelegramError) -> DeliveryError:
    """Forbidden (blocked, deactivated) and bad requests will not work later either."""
    permanent = isinstance(exc, (Forbidden, BadRequest))
    return DeliveryError(f"Telegram: {exc}", retry_after=_retry_after(exc), permanent=permanent)


def _hints(language_code: str | None) -> tuple[str, ...]:
    """The language of the customer's Telegram app (an IETF tag, e.g. "de"), when it tells."""
    return (language_code,) if language_code else ()
