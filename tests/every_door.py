"""The service with every HTTP door open at once, and how each door's callers sign a request.

Doors: the generic webhook, WhatsApp + Messenger + Instagram (one Meta webhook), X, Telegram
in webhook mode, the Slack desk over HTTP, the web chat, the inbox (an agent with every role,
logged in), the console, the insights and ``/metrics`` (with a bearer token). Each platform
talks to its stand-in on loopback; the encoder is the fake one; the database is SQLite, or
PostgreSQL when ``database_url`` is one. Used by the spec's route check (tests/test_openapi.py)
and the fuzzer (tests/fuzz_doors.py, tests/test_fuzz.py, bench/fuzz.py).

:meth:`Doors.sign` signs a request as each platform signs it (or leaves it unsigned, or signs
it wrongly, as the fuzzer asks): HMAC headers for the webhook, Meta, X and Slack, Telegram's
secret token header, the inbox's session cookie and CSRF field, the login form's double-submit
cookie, the metrics bearer token, and the signed tokens of the web chat's visitors and of the
links to customers' files.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import shutil
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from aiohttp.test_utils import TestServer
from sqlalchemy import func, select

from carebot.desk.auth import SESSION_COOKIE, hash_password
from carebot.server import Service
from carebot.signing import Signer, load_secret
from carebot.store import tables
from carebot.store.logins import SessionRecords
from tests.conftest import TEST_INTENTS
from tests.graph_standin import GraphStandIn
from tests.graph_standin import sign as meta_signature
from tests.service import AGENT_PASSWORD, running_service, service_settings
from tests.slack_standin import SlackStandIn
from tests.telegram_standin import TelegramStandIn
from tests.webhook_standin import ReplyReceiver, sign_body
from tests.x_standin import XStandIn
from tests.x_standin import sign as x_signature

WEBHOOK_SECRET = "whsec-fuzz"
META_APP_SECRET, META_VERIFY_TOKEN, META_TOKEN = "meta-app-secret", "meta-verify", "EAAfuzz"
X_SECRET, X_TOKEN, X_BRAND = "x-consumer-secret", "x-user-token", "1500000000000000001"
TELEGRAM_SECRET = "hook-secret_fuzz"
SLACK_SECRET, SLACK_CHANNEL, SLACK_AGENT = "8f742231b10e8888abcd99yyyzzz85a5", "C0CARE", "UANN"
METRICS_TOKEN = "metrics-fuzz-token"
ACCOUNTS = {"whatsapp": "1111", "messenger": "2222", "instagram": "3333"}
ENV = {
    "CAREBOT_WEBHOOK_SECRET": WEBHOOK_SECRET,
    "WHATSAPP_TOKEN": META_TOKEN,
    "MESSENGER_PAGE_TOKEN": META_TOKEN,
    "INSTAGRAM_TOKEN": META_TOKEN,
    "META_APP_SECRET": META_APP_SECRET,
    "META_VERIFY_TOKEN": META_VERIFY_TOKEN,
    "X_CONSUMER_SECRET": X_SECRET,
    "X_USER_TOKEN": X_TOKEN,
    "TELEGRAM_WEBHOOK_SECRET": TELEGRAM_SECRET,
    "SLACK_BOT_TOKEN": "xoxb-test",
    "SLACK_SIGNING_SECRET": SLACK_SECRET,
    "CAREBOT_METRICS_TOKEN": METRICS_TOKEN,
}
# What the tables hold that a door may write: a request with a bad signature must add none.
COUNTED = (
    tables.Customer,
    tables.Identity,
    tables.ContactPoint,
    tables.Conversation,
    tables.Message,
    tables.DecisionRow,
    tables.Handoff,
    tables.SlackEvent,
    tables.EmotionLabelRow,
    tables.IntentRevision,
    tables.IntentProposal,
    tables.LoginFailure,
    tables.InboxSession,
    tables.ConversationEvent,
    tables.Note,
    tables.ConversationLabel,
    tables.AgentPresence,
    tables.PublicItem,
)
# How a request is sent: signed right, without its signature, or with a wrong one.
SIGNED, UNSIGNED, MIS_SIGNED, OPEN = "signed", "unsigned", "mis-signed", "open"
# The ways of signing wrongly (the fuzzer draws one; each scheme reads those it has).
WRONG_SECRET, TAMPERED, STALE, GARBAGE = "wrong-secret", "tampered", "stale", "garbage"


@dataclass
class Request:
    """One HTTP request as the fuzzer sends it (``body`` as raw bytes, headers as given)."""

    method: str
    path: str
    query: list[tuple[str, str]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    cookies: dict[str, str] = field(default_factory=dict)


@dataclass
class AgentLogin:
    cookie: str  # the signed session id
    csrf: str


@dataclass
class Doors:
    service: Service
    server: TestServer
    secret: bytes  # the service's signing secret (visitor tokens, sessions, file links)
    agent: AgentLogin  # ann, with every role
    slack: SlackStandIn
    telegram: TelegramStandIn
    graph: GraphStandIn
    x: XStandIn
    receiver: ReplyReceiver

    def signer(self, purpose: str) -> Signer:
        return Signer(self.secret, purpose)

    async def new_login(self, agent: str = "ann") -> AgentLogin:
        """A fresh session of ``agent`` (as a login makes it, without the password's hashing
        work): the fuzzer's logouts end their own sessions, not the one the others use."""
        records = SessionRecords(self.service.runtime.db, self.service.runtime.clock)
        session_id, row = await records.start(agent, ttl=timedelta(hours=8))
        cookie = self.signer("inbox-session").sign(session_id, ttl=8 * 3600)
        return AgentLogin(cookie, row.csrf)

    async def rows(self) -> int:
        """How many rows the tables a door may write hold, all together."""
        counts = [select(func.count()).select_from(table).scalar_subquery() for table in COUNTED]
        async with self.service.runtime.db.session() as session:
            found = (await session.execute(select(*counts))).one()
        return sum(int(n) for n in found)

    async def settle(self) -> None:
        """Wait for the Slack desk's actions in hand (bolt runs them after it answered)."""
        if self.service.slack is not None:
            await self.service.slack.settle()

    def sign(self, scheme: str, request: Request, mode: str, how: str) -> Request:
        """``request`` signed by ``scheme``'s rules (``mode`` signed, unsigned or
        mis-signed; ``how``: the way of getting it wrong)."""
        if mode in (OPEN, UNSIGNED) and scheme not in ("session", "login", "webchat"):
            return request
        signing = SCHEMES[scheme]
        signing(self, request, mode, how)
        return request


def _secret(mode: str, how: str, right: str) -> str:
    return right + "-not" if mode == MIS_SIGNED and how == WRONG_SECRET else right


def _tampered(request: Request, mode: str, how: str) -> None:
    """A body changed after it was signed (the signature is of the original)."""
    if mode == MIS_SIGNED and how == TAMPERED:
        request.body = (request.body or b"") + b" "


def _webhook(doors: Doors, request: Request, mode: str, how: str) -> None:
    raw = request.body or b""
    at = int(time.time()) - (3600 if mode == MIS_SIGNED and how == STALE else 0)
    header = sign_body(_secret(mode, how, WEBHOOK_SECRET), raw, timestamp=at)
    if mode == MIS_SIGNED and how == GARBAGE:
        header = "t=now,v1=zz"
    request.headers["X-Carebot-Signature"] = header
    _tampered(request, mode, how)


def _meta(doors: Doors, request: Request, mode: str, how: str) -> None:
    if request.method == "GET":  # the verification handshake: the verify token
        query = [(k, v) for k, v in request.query if k != "hub.verify_token"]
        request.query = [*query, ("hub.verify_token", _secret(mode, how, META_VERIFY_TOKEN))]
        return
    raw = request.body or b""
    header = meta_signature(_secret(mode, how, META_APP_SECRET), raw)
    if mode == MIS_SIGNED and how in (GARBAGE, STALE):
        header = "sha256=" + "0" * 64
    request.headers["X-Hub-Signature-256"] = header
    _tampered(request, mode, how)


def _x(doors: Doors, request: Request, mode: str, how: str) -> None:
    raw = request.body or b""
    header = x_signature(_secret(mode, how, X_SECRET), raw)
    if mode == MIS_SIGNED and how in (GARBAGE, STALE):
        header = "sha256=garbage"
    request.headers["x-twitter-webhooks-signature"] = header
    _tampered(request, mode, how)


def _telegram(doors: Doors, request: Request, mode: str, how: str) -> None:
    token = _secret(mode, how, TELEGRAM_SECRET)
    if mode == MIS_SIGNED and how != WRONG_SECRET:
        token = TELEGRAM_SECRET[:-1]
    request.headers["X-Telegram-Bot-Api-Secret-Token"] = token


def _slack(doors: Doors, request: Request, mode: str, how: str) -> None:
    raw = request.body or b""
    at = int(time.time()) - (3600 if mode == MIS_SIGNED and how == STALE else 0)
    content_type = request.headers.get("Content-Type", "application/json")
    secret = _secret(mode, how, SLACK_SECRET).encode()
    mac = hmac.new(secret, f"v0:{at}:".encode() + raw, hashlib.sha256).hexdigest()
    signature = "v0=nothing" if mode == MIS_SIGNED and how == GARBAGE else f"v0={mac}"
    request.headers.update(
        {
            "X-Slack-Signature": signature,
            "X-Slack-Request-Timestamp": str(at),
            "Content-Type": content_type,
        }
    )
    _tampered(request, mode, how)


def _session(doors: Doors, request: Request, mode: str, how: str) -> None:
    """The session cookie, and on a form the CSRF token: a mis-signed request has a forged
    cookie (wrong secret), or the right cookie with a wrong CSRF token."""
    login = doors.agent
    if mode == UNSIGNED:
        _set_csrf(request, "")
        return
    cookie, csrf = login.cookie, login.csrf
    if mode == MIS_SIGNED:
        if how in (WRONG_SECRET, STALE) or request.method == "GET":  # (a GET has no CSRF)
            cookie = Signer(doors.secret + b"-not", "inbox-session").sign("1", ttl=3600)
        else:
            csrf = csrf[::-1]
    request.cookies[SESSION_COOKIE] = cookie
    _set_csrf(request, csrf)


def _set_csrf(request: Request, csrf: str) -> None:
    """Put ``csrf`` in a form body's ``csrf`` field (kept where the form has none: the
    fuzzer's forms without the field test that too)."""
    if request.method != "POST" or request.body is None:
        return
    if request.headers.get("Content-Type") != "application/x-www-form-urlencoded":
        return
    try:
        fields = parse_qsl(request.body.decode(), keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        return  # not a form the fuzzer could rewrite: sent as it is
    if not any(name == "csrf" for name, _ in fields):
        return
    fields = [(name, csrf if name == "csrf" else value) for name, value in fields]
    request.body = urlencode(fields).encode()


def _login(doors: Doors, request: Request, mode: str, how: str) -> None:
    """The login form's double submit: the same token in the cookie and the form."""
    token = "login-token-fuzz"
    if mode == UNSIGNED:
        return
    request.cookies["carebot_login"] = token
    _set_csrf(request, token if mode == SIGNED else "other-token")


def _webchat(doors: Doors, request: Request, mode: str, how: str) -> None:
    """Nothing on the handshake: the visitor's token goes in the hello frame (the fuzzer
    signs it with :meth:`Doors.visitor_token`)."""


def _bearer(doors: Doors, request: Request, mode: str, how: str) -> None:
    request.headers["Authorization"] = f"Bearer {_secret(mode, how, METRICS_TOKEN)}"


def _file_link(purpose: str) -> Any:
    def sign(doors: Doors, request: Request, mode: str, how: str) -> None:
        prefix, _, file_id = request.path.rpartition("/")
        secret = doors.secret + (b"-not" if mode == MIS_SIGNED else b"")
        token = Signer(secret, purpose).sign(file_id or "file", ttl=3600)
        request.path = f"{prefix}/{token}"

    return sign


SCHEMES = {
    "webhook": _webhook,
    "meta": _meta,
    "x": _x,
    "telegram": _telegram,
    "slack": _slack,
    "session": _session,
    "login": _login,
    "webchat": _webchat,
    "bearer": _bearer,
    "telegram-file": _file_link("telegram-file"),
    "wa-media": _file_link("wa-media"),
}


def visitor_token(doors: Doors, visitor: str, mode: str) -> str:
    """A web chat visitor's token: the service's own, or (mis-signed) a forged one."""
    secret = doors.secret + (b"-not" if mode == MIS_SIGNED else b"")
    return Signer(secret, "webchat-visitor").sign(visitor, ttl=86400)


@asynccontextmanager
async def every_door(tmp_path: Path, database_url: str) -> AsyncIterator[Doors]:
    """The service with every door open, on ``database_url``, and an agent logged in."""
    async with AsyncExitStack() as stack:
        slack = await stack.enter_async_context(SlackStandIn())
        slack.add_user(SLACK_AGENT, name="ann", real_name="Ann Agent", display_name="Ann")
        slack.members = {SLACK_AGENT, "UBOT"}
        telegram = await stack.enter_async_context(TelegramStandIn())
        graph = await stack.enter_async_context(GraphStandIn(META_TOKEN, "v21.0"))
        graph.whatsapp_number(ACCOUNTS["whatsapp"])
        graph.page(ACCOUNTS["messenger"])
        graph.page(ACCOUNTS["instagram"])
        x = await stack.enter_async_context(XStandIn(X_TOKEN))
        receiver = await stack.enter_async_context(ReplyReceiver(WEBHOOK_SECRET))
        intents = tmp_path / "intents"  # the console publishes into it
        shutil.copytree(TEST_INTENTS, intents)
        settings = every_door_settings(tmp_path, intents, slack, telegram, graph, x, receiver)
        env = ENV | {"TELEGRAM_BOT_TOKEN": telegram.token}
        service, server = await stack.enter_async_context(
            running_service(settings, database_url, env=env, login_sleep=_no_wait)
        )
        secret = load_secret(settings.server.secret_env, settings.path(settings.server.secret_file))
        nobody = AgentLogin("", "")
        doors = Doors(service, server, secret, nobody, slack, telegram, graph, x, receiver)
        doors.agent = await doors.new_login()
        yield doors


async def _no_wait(_seconds: float) -> None:
    """The inbox's growing delay after failed logins, not waited out by the fuzzer."""
    await asyncio.sleep(0)


def every_door_settings(
    tmp_path: Path,
    intents: Path,
    slack: SlackStandIn,
    telegram: TelegramStandIn,
    graph: GraphStandIn,
    x: XStandIn,
    receiver: ReplyReceiver,
) -> Any:
    agent = {
        "name": "ann",
        "display_name": "Ann",
        "roles": ["agent", "lead", "ops"],
        "slack_user_id": SLACK_AGENT,
    }
    return service_settings(
        tmp_path,
        matcher={"intents_dir": str(intents)},
        inbox={"agents": [agent | {"password_hash": hash_password(AGENT_PASSWORD)}]},
        server={
            "public_url": "https://care.example",
            "secret_file": str(tmp_path / "secret_key"),
        },
        webhook={"enabled": True, "reply_url": receiver.url},
        whatsapp={"enabled": True, "account_id": ACCOUNTS["whatsapp"]},
        messenger={"enabled": True, "account_id": ACCOUNTS["messenger"]},
        instagram={"enabled": True, "account_id": ACCOUNTS["instagram"]},
        meta={"graph_url": graph.url, "api_version": "v21.0"},
        x={"enabled": True, "user_id": X_BRAND, "api_url": x.url},
        telegram={
            "enabled": True,
            "mode": "webhook",
            "api_url": f"{telegram.url}/bot",
            "file_url": f"{telegram.url}/file/bot",
        },
        slack={"channel": SLACK_CHANNEL, "api_url": slack.base_url, "posts_per_second": 1000.0},
        metrics={"enabled": True, "token_env": "CAREBOT_METRICS_TOKEN"},
    )
