"""A local Telegram Bot API for the real python-telegram-bot client, plus update builders.

Point the client at it with `telegram.Bot(token, base_url=f"{s.url}/bot",
base_file_url=f"{s.url}/file/bot")`: every call is `POST /bot{token}/{method}`, form-encoded by
PTB (JSON-typed values such as `reply_markup` arrive as JSON strings, decoded in the records;
plain values such as `chat_id` stay strings), multipart with files, or a JSON body.

Updates pushed with `push()` wait for `getUpdates` while no webhook is set. Once a bot has set
one, they are delivered as Telegram does: POSTed as JSON to the webhook's URL with its secret
token (`X-Telegram-Bot-Api-Secret-Token`), one update at a time per chat and in order (the next
update of a chat goes once the one before was answered 2xx), chats side by side up to the
webhook's `max_connections` (default 40); an answer that is not 2xx, a connection that fails or
no answer within `webhook_timeout` seconds and the update is delivered again after a backoff.
Every attempt is recorded in `deliveries`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import aiohttp
from aiohttp import web

from carebot.retry import Backoff
from tests.loopback import Json, StandIn

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
BLOCKED = "Forbidden: bot was blocked by the user"
TERMINATED = (
    "Conflict: terminated by other getUpdates request; make sure that only one bot instance "
    "is running"
)
_update_ids = itertools.count(100_000)
_message_ids = itertools.count(1)
_file_ids = itertools.count(1)


class ApiError(Exception):
    """An error answer: HTTP `status` with `{"ok": false, "error_code", "description"}`."""

    def __init__(self, status: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.status, self.description, self.retry_after = status, description, retry_after

    def body(self) -> Json:
        body: Json = {"ok": False, "error_code": self.status, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


@dataclass(frozen=True)
class Delivery:
    """One POST of an update to the webhook: its answer's status (None: the connection failed
    or no answer came in time, `error` says which), when it started and ended (monotonic)."""

    update_id: int
    chat: int | str | None
    status: int | None
    started: float
    ended: float
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass(frozen=True)
class Call:
    """One API request and the HTTP status it was answered with."""

    method: str
    params: Json
    status: int
    token: str = ""  # the token it came with (see TelegramStandIn.accept)
    at: float = field(default_factory=time.time, compare=False)  # when it was answered


class TelegramStandIn(StandIn):
    """The Bot API methods carebot uses, with records, failure injection and an update queue."""

    def __init__(
        self, token: str = "123456:TEST-token", bot_username: str = "carebot_test_bot"
    ) -> None:
        super().__init__()
        self._token = token
        bot_id = int(token.split(":")[0]) if token.split(":")[0].isdigit() else 123456
        self.bot_user: Json = {"id": bot_id, "is_bot": True, "first_name": "Carebot"}
        self.bot_user["username"] = bot_username
        self.calls: list[Call] = []
        self.sent: list[Json] = []  # sendMessage params
        self.messages: dict[int, Json] = {}  # message_id -> the Message the bot sent
        self.actions: list[Json] = []
        self.answered_callbacks: list[Json] = []
        self.webhook: Json | None = None
        self.files: dict[str, tuple[str, bytes]] = {}  # file_id -> (file_path, content)
        self._updates: list[Json] = []
        self._failures: dict[str, list[ApiError]] = {}
        self.waiting_polls = 0  # getUpdates calls waiting for an update right now
        # Long polls cut short by a newer getUpdates while their client was still there (the
        # real Bot API answers the older one 409 Conflict: two bot instances poll).
        self.conflicts = 0
        self._open_polls: dict[int, tuple[web.Request, list[bool]]] = {}
        self.poll_tokens: list[str] = []  # the token of each getUpdates, as they arrive
        self._tokens = {token}
        self.holding: list[str] = []  # methods whose call is held right now (see hold_next)
        self._holds: dict[str, asyncio.Event] = {}
        self._closing = False
        self._tasks: set[asyncio.Task[None]] = set()
        # Webhook delivery (see the module's docstring).
        self.webhook_timeout = 10.0  # seconds an attempt waits for the webhook's answer
        self.webhook_backoff = Backoff(base=0.5, cap=10.0)  # between attempts of one update
        self.deliveries: list[Delivery] = []
        self.delivered: dict[int, float] = {}  # update_id -> when it was answered 2xx
        self._lanes: dict[int | str | None, asyncio.Task[None]] = {}  # chat -> its delivery
        self._hooks: aiohttp.ClientSession | None = None
        self._hook_slots: asyncio.Semaphore | None = None

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT`; the client's base_url is `url + "/bot"`."""
        return self.root

    @property
    def token(self) -> str:
        """The one token the stand-in accepts (any other gets 401 Unauthorized)."""
        return self._token

    def accept(self, token: str) -> None:
        """Accept ``token`` too, for the same bot: several processes can be told apart by the
        token each was given (``Call.token``)."""
        self._tokens.add(token)

    @property
    def pending(self) -> list[Json]:
        """Updates queued and not yet confirmed by an offset."""
        return list(self._updates)

    def _routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/bot{token}/{method}", self._on_api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._on_file)

    async def stop(self) -> None:
        """Answer pending long polls with [] at once, end webhook deliveries (what was not
        delivered stays pending), then close the socket."""
        self._closing = True
        await self._notify()
        await self._stop_deliveries()
        await super().stop()
        self._closing = False

    def fail_next(
        self,
        method: str,
        status: int,
        description: str | None = None,
        retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        """The next `times` calls of `method` answer `status` with `description` (a default per
        status) and, given `retry_after`, `parameters.retry_after`."""
        if description is None:
            description = BLOCKED if status == 403 else HTTPStatus(status).phrase
            if retry_after is not None:
                description = f"Too Many Requests: retry after {retry_after}"
        error = ApiError(status, description, retry_after)
        self._failures.setdefault(method, []).extend([error] * times)

    def hold_next(self, method: str) -> asyncio.Event:
        """The next call of `method` waits, listed in `holding`, until the returned event is
        set (a platform slow to answer: the call is in flight meanwhile)."""
        gate = asyncio.Event()
        self._holds[method] = gate
        return gate

    def add_file(self, file_id: str, content: bytes, path: str = "photos/file_1.jpg") -> None:
        """Make `file_id` known to getFile, its bytes served at `/file/bot{token}/{path}`."""
        self.files[file_id] = (path, content)

    def push(self, update: Json) -> int:
        """Queue `update` for getUpdates; returns its update_id (assigned if it has none)."""
        if "update_id" not in update:
            update = {"update_id": next(_update_ids), **update}
        self._updates.append(update)
        self._updates.sort(key=lambda u: u["update_id"])
        task = asyncio.get_running_loop().create_task(self._notify())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if self.webhook is not None:
            self._deliver_chat(_chat_of(update))
        return int(update["update_id"])

    async def next_sent(self, count: int = 1, timeout: float = 10.0) -> list[Json]:
        """Wait until `count` messages were sent; return the first `count`."""
        return await self._wait_count(self.sent, count, timeout)

    def last_message(self, chat_id: int | str | None = None) -> Json:
        """The Message the bot sent last (to `chat_id`), e.g. for a `callback_update`."""
        for message in reversed(self.messages.values()):
            if chat_id is None or str(message["chat"]["id"]) == str(chat_id):
                return message
        raise KeyError(f"no message sent to {chat_id}")

    def calls_of(self, method: str) -> list[Call]:
        """The calls of `method`, failed ones included."""
        return [call for call in self.calls if call.method == method]

    def _describe(self) -> str:
        seen = ", ".join(f"{c.method}({c.status})" for c in self.calls) or "none"
        return f"sent {len(self.sent)}; calls: {seen}"

    async def _on_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        token = request.match_info["token"]
        params = await _read_params(request)
        try:
            result = await self._dispatch(token, method, params, request)
        except ApiError as error:
            self.calls.append(Call(method, params, error.status, token))
            await self._notify()
            return web.json_response(error.body(), status=error.status)
        self.calls.append(Call(method, params, 200, token))
        await self._notify()
        return web.json_response({"ok": True, "result": result})

    async def _dispatch(
        self, token: str, method: str, params: Json, request: web.Request | None = None
    ) -> Any:
        if token not in self._tokens:
            raise ApiError(401, "Unauthorized")
        handler = self._methods().get(method)
        if handler is None:
            raise ApiError(404, "Not Found")
        if self._failures.get(method):
            raise self._failures[method].pop(0)
        if method in self._holds:
            await self._held(method, self._holds.pop(method))
        if method == "getUpdates":
            self.poll_tokens.append(token)
            return await self._get_updates(params, request)
        return handler(params)

    def _methods(self) -> dict[str, Callable[[Json], Any]]:
        return {
            "getMe": self._get_me,
            "deleteWebhook": self._delete_webhook,
            "setWebhook": self._set_webhook,
            "getWebhookInfo": self._webhook_info,
            "getUpdates": lambda p: [],
            "sendMessage": self._send_message,
            "sendChatAction": lambda p: _record(self.actions, p),
            "answerCallbackQuery": lambda p: _record(self.answered_callbacks, p),
            "setMyCommands": lambda p: True,
            "getFile": self._get_file,
        }

    def _get_me(self, params: Json) -> Json:
        flags = ("can_read_all_group_messages", "supports_inline_queries")
        extra = dict.fromkeys((*flags, "can_connect_to_business", "has_main_web_app"), False)
        return {**self.bot_user, "can_join_groups": True, **extra}

    def _delete_webhook(self, params: Json) -> bool:
        self.webhook = None
        self._cancel_lanes()
        if str(params.get("drop_pending_updates", "")).lower() == "true":
            self._updates.clear()
        return True

    def _set_webhook(self, params: Json) -> bool:
        if not params.get("url"):
            raise ApiError(400, "Bad Request: bad webhook: URL must not be empty")
        self.webhook = params
        if str(params.get("drop_pending_updates", "")).lower() == "true":
            self._updates.clear()
        for chat in {_chat_of(u) for u in self._updates}:
            self._deliver_chat(chat)
        return True

    # --- webhook delivery ----------------------------------------------------------------

    def _deliver_chat(self, chat: int | str | None) -> None:
        """Start delivering ``chat``'s pending updates, unless that is going on already."""
        lane = self._lanes.get(chat)
        if lane is None or lane.done():
            task = asyncio.get_running_loop().create_task(self._deliver_lane(chat))
            self._lanes[chat] = task

    async def _deliver_lane(self, chat: int | str | None) -> None:
        """One chat's updates, one at a time and in order, each until it is answered 2xx."""
        while self.webhook is not None:
            waiting = [u for u in self._updates if _chat_of(u) == chat]
            if not waiting:
                break
            update = waiting[0]
            failures = 0
            while not await self._post_update(update, chat):
                failures += 1
                await asyncio.sleep(self.webhook_backoff.delay(failures))
                if self.webhook is None:
                    return
            self.delivered[int(update["update_id"])] = time.monotonic()
            self._updates = [u for u in self._updates if u is not update]
            await self._notify()
        if self._lanes.get(chat) is asyncio.current_task():
            del self._lanes[chat]

    async def _post_update(self, update: Json, chat: int | str | None) -> bool:
        """One attempt: POST ``update`` to the webhook; whether it was answered 2xx."""
        hook = self.webhook
        assert hook is not None
        allowed = hook.get("allowed_updates") or None
        if allowed is not None and _kind(update) not in allowed:
            return True  # Telegram does not send what the bot did not ask for
        if self._hooks is None or self._hook_slots is None:
            self._hooks = aiohttp.ClientSession()
            self._hook_slots = asyncio.Semaphore(int(hook.get("max_connections") or 40))
        headers = {"Content-Type": "application/json"}
        if hook.get("secret_token"):
            headers[SECRET_HEADER] = str(hook["secret_token"])
        status, error = None, ""
        async with self._hook_slots:
            started = time.monotonic()
            try:
                async with self._hooks.post(
                    str(hook["url"]),
                    data=json.dumps(update).encode(),
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=self.webhook_timeout),
                ) as response:
                    status = response.status
                    await response.read()
            except TimeoutError:
                error = f"no answer within {self.webhook_timeout:g} s"
            except aiohttp.ClientError as exc:
                error = f"{type(exc).__name__}: {exc}"
        delivery = Delivery(
            int(update["update_id"]), chat, status, started, time.monotonic(), error
        )
        self.deliveries.append(delivery)
        await self._notify()
        return delivery.ok

    def _cancel_lanes(self) -> None:
        for lane in self._lanes.values():
            lane.cancel()
        self._lanes.clear()

    async def _stop_deliveries(self) -> None:
        lanes = list(self._lanes.values())
        self._cancel_lanes()
        await asyncio.gather(*lanes, return_exceptions=True)
        if self._hooks is not None:
            hooks, self._hooks, self._hook_slots = self._hooks, None, None
            await hooks.close()

    def _webhook_info(self, params: Json) -> Json:
        hook = self.webhook or {}
        info: Json = {"url": hook.get("url", ""), "has_custom_certificate": False}
        info["pending_update_count"] = len(self._updates)
        if hook.get("allowed_updates"):
            info["allowed_updates"] = hook["allowed_updates"]
        return info

    async def _get_updates(self, params: Json, request: web.Request | None = None) -> list[Json]:
        if self.webhook is not None:
            raise ApiError(409, "Conflict: can't use getUpdates method while webhook is active")
        await self._terminate_open_polls()
        offset = int(params.get("offset") or 0)
        if offset > 0:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        allowed = params.get("allowed_updates") or None
        limit = int(params.get("limit") or 100)

        def ready() -> list[Json]:
            kinds = [u for u in self._updates if allowed is None or _kind(u) in allowed]
            return kinds[:limit]

        timeout = float(params.get("timeout") or 0)
        if not ready() and timeout > 0 and request is not None:
            terminated = [False]
            self._open_polls[id(terminated)] = (request, terminated)
            try:
                done = lambda: bool(ready()) or self._closing or terminated[0]  # noqa: E731
                await self._long_poll(done, timeout)
            finally:
                self._open_polls.pop(id(terminated), None)
            if terminated[0]:
                raise ApiError(409, TERMINATED)
        return [] if self._closing else ready()

    async def _terminate_open_polls(self) -> None:
        """A getUpdates while another waits for a client still there: the older is answered
        409 Conflict (one whose client went away, a killed process, is left to time out)."""
        for key, (request, terminated) in list(self._open_polls.items()):
            if request.transport is not None and not request.transport.is_closing():
                terminated[0] = True
                self.conflicts += 1
                del self._open_polls[key]
        await self._notify()

    async def _held(self, method: str, gate: asyncio.Event) -> None:
        self.holding.append(method)
        await self._notify()
        try:
            await gate.wait()
        finally:
            self.holding.remove(method)

    async def _long_poll(self, done: Callable[[], bool], timeout: float) -> None:
        self.waiting_polls += 1
        await self._notify()
        try:
            async with asyncio.timeout(timeout), self._cond:
                await self._cond.wait_for(done)
        except TimeoutError:
            pass
        finally:
            self.waiting_polls -= 1

    def _send_message(self, params: Json) -> Json:
        if not params.get("chat_id"):
            raise ApiError(400, "Bad Request: chat_id is empty")
        if not str(params.get("text", "")).strip():
            raise ApiError(400, "Bad Request: message text is empty")
        chat_id = _int_or_str(params["chat_id"])
        message: Json = {"message_id": next(_message_ids), "date": int(time.time())}
        message |= {"chat": {"id": chat_id, "type": "private"}, "from": dict(self.bot_user)}
        message["text"] = params["text"]
        if isinstance(params.get("reply_markup"), dict):
            message["reply_markup"] = params["reply_markup"]
        self.sent.append(params)
        self.messages[message["message_id"]] = message
        return message

    def _get_file(self, params: Json) -> Json:
        file_id = str(params.get("file_id", ""))
        if file_id not in self.files:
            raise ApiError(400, "Bad Request: invalid file_id")
        path, content = self.files[file_id]
        info = {"file_id": file_id, "file_unique_id": f"U{file_id}"[:32], "file_path": path}
        return info | {"file_size": len(content)}

    async def _on_file(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        if request.match_info["token"] == self._token:
            for file_path, content in self.files.values():
                if file_path == path:
                    return web.Response(body=content)
        return web.json_response(ApiError(404, "Not Found").body(), status=404)


async def _read_params(request: web.Request) -> Json:
    """Query string plus a JSON, form or multipart body; JSON objects/arrays in values decoded."""
    params: Json = dict(request.query)
    if request.content_type == "application/json":
        raw = await request.read()
        params.update(json.loads(raw) if raw else {})
        return params
    for key, value in (await request.post()).items():
        params[key] = value.file.read() if isinstance(value, web.FileField) else value
    return {key: _maybe_json(value) for key, value in params.items()}


def _maybe_json(value: Any) -> Any:
    if not isinstance(value, str) or value[:1] not in ("[", "{"):
        return value
    try:
        decoded = json.loads(value)
    except ValueError:
        return value
    return decoded if isinstance(decoded, list | dict) else value


def _record(records: list[Json], params: Json) -> bool:
    records.append(params)
    return True


def _int_or_str(value: Any) -> int | str:
    text = str(value)
    return int(text) if text.lstrip("-").isdigit() else text


def _kind(update: Json) -> str:
    return next((key for key in update if key != "update_id"), "")


def _chat_of(update: Json) -> int | str | None:
    """The chat an update belongs to (None: an update of no chat)."""
    body = update.get(_kind(update))
    if not isinstance(body, dict):
        return None
    message = body.get("message", body) if _kind(update) == "callback_query" else body
    chat = message.get("chat") if isinstance(message, dict) else None
    return chat.get("id") if isinstance(chat, dict) else None


async def post_update(
    url: str, update: Json, *, secret: str | None = None, content_type: str = "application/json"
) -> int:
    """POST one update to a webhook URL as Telegram does; returns the HTTP status."""
    headers = {"Content-Type": content_type}
    if secret is not None:
        headers[SECRET_HEADER] = secret
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=json.dumps(update).encode(), headers=headers) as response,
    ):
        return response.status


# Update builders: dicts `telegram.Update.de_json` accepts, each with fresh ids unless given.


def user(user_id: int, first_name: str = "Ann", username: str | None = "ann") -> Json:
    """A (human) Telegram user."""
    person: Json = {"id": user_id, "is_bot": False, "first_name": first_name}
    return person | ({"username": username} if username else {}) | {"language_code": "en"}


def chat(chat_id: int, chat_type: str = "private", **names: Any) -> Json:
    """A chat: private chats carry the user's names, the others a title."""
    if chat_type == "private":
        return {"id": chat_id, "type": chat_type, **names}
    return {"id": chat_id, "type": chat_type, "title": names.get("title", "Care group")}


def message_update(
    chat_id: int,
    content: Json,
    *,
    user_id: int | None = None,
    first_name: str = "Ann",
    username: str | None = "ann",
    chat_type: str = "private",
    update_id: int | None = None,
    message_id: int | None = None,
    key: str = "message",
) -> Json:
    """An update whose `key` ("message", "edited_message"...) holds a message with `content`."""
    sender = user(chat_id if user_id is None else user_id, first_name, username)
    names = {"first_name": first_name} | ({"username": username} if username else {})
    msg: Json = {"message_id": next(_message_ids) if message_id is None else message_id}
    msg |= {"from": sender, "chat": chat(chat_id, chat_type, **names), "date": int(time.time())}
    update_id = next(_update_ids) if update_id is None else update_id
    return {"update_id": update_id, key: msg | content}


def text_update(chat_id: int, text: str, **kwargs: Any) -> Json:
    """A text message (kwargs as in `message_update`)."""
    return message_update(chat_id, {"text": text}, **kwargs)


def command_update(chat_id: int, command: str, **kwargs: Any) -> Json:
    """A bot command such as "/start" or "/start payload"."""
    length = len(command.split()[0])
    entity = {"type": "bot_command", "offset": 0, "length": length}
    return message_update(chat_id, {"text": command, "entities": [entity]}, **kwargs)


def _file(file_id: str, size: int, **extra: Any) -> Json:
    return {"file_id": file_id, "file_unique_id": f"u{next(_file_ids)}", "file_size": size} | extra


def photo_update(chat_id: int, file_id: str, caption: str | None = None, **kwargs: Any) -> Json:
    """A photo: PhotoSize dicts from thumbnail to full size, the largest with `file_id`."""
    sizes = [_file(f"{file_id}-s", 1200, width=90, height=67)]
    sizes.append(_file(file_id, 48000, width=1280, height=960))
    content: Json = {"photo": sizes} | ({"caption": caption} if caption else {})
    return message_update(chat_id, content, **kwargs)


def voice_update(chat_id: int, file_id: str, duration: int = 3, **kwargs: Any) -> Json:
    """A voice note."""
    voice = _file(file_id, 9000, duration=duration, mime_type="audio/ogg")
    return message_update(chat_id, {"voice": voice}, **kwargs)


def sticker_update(
    chat_id: int, file_id: str = "sticker-1", emoji: str = "👍", **kwargs: Any
) -> Json:
    """A (static, regular) sticker."""
    sticker = _file(file_id, 20000, width=512, height=512, is_animated=False, is_video=False)
    sticker |= {"type": "regular", "emoji": emoji}
    return message_update(chat_id, {"sticker": sticker}, **kwargs)


def document_update(chat_id: int, file_id: str, file_name: str, **kwargs: Any) -> Json:
    """A document (any file sent as such)."""
    document = _file(file_id, 30000, file_name=file_name, mime_type="application/pdf")
    return message_update(chat_id, {"document": document}, **kwargs)


def contact_update(chat_id: int, phone_number: str, user_id: int, **kwargs: Any) -> Json:
    """The user shares a contact (their own when `user_id` is theirs)."""
    contact = {"phone_number": phone_number, "first_name": "Ann", "user_id": user_id}
    return message_update(chat_id, {"contact": contact}, user_id=user_id, **kwargs)


def edited_update(
    chat_id: int, message_id: int, text: str, edit_date: int | None = None, **kwargs: Any
) -> Json:
    """The user edited message `message_id` (key `edited_message`)."""
    edit_date = int(time.time()) if edit_date is None else edit_date
    content = {"text": text, "edit_date": edit_date}
    return message_update(chat_id, content, message_id=message_id, key="edited_message", **kwargs)


def callback_update(
    chat_id: int,
    data: str,
    *,
    message_id: int,
    keyboard: list[list[Json]],
    user_id: int | None = None,
    bot_id: int = 123456,
    update_id: int | None = None,
    query_id: str | None = None,
) -> Json:
    """The user taps an inline button carrying `data` under the bot's message `message_id`."""
    person = user(chat_id if user_id is None else user_id)
    bot = {"id": bot_id, "is_bot": True, "first_name": "Carebot", "username": "carebot_test_bot"}
    message = {"message_id": message_id, "from": bot, "date": int(time.time()), "text": "…"}
    message |= {"chat": chat(chat_id, first_name="Ann", username="ann")}
    message["reply_markup"] = {"inline_keyboard": keyboard}
    query = {"id": query_id or str(next(_update_ids)), "from": person, "message": message}
    query |= {"chat_instance": f"ci-{chat_id}", "data": data}
    update_id = next(_update_ids) if update_id is None else update_id
    return {"update_id": update_id, "callback_query": query}
