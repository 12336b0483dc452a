"""Agent logins for the inbox: argon2 password hashes from config or the environment,
server-side sessions behind signed cookies (HttpOnly, SameSite=Strict, Secure over HTTPS or
with ``[server] secure_cookies``) and a CSRF token on every form. An agent's roles
say what else they may open: ``lead`` the numbers at ``/insights`` and the conversation export,
``ops`` the intents."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from aiohttp import web
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from carebot.config import InboxSettings
from carebot.exceptions import ConfigError
from carebot.signing import Signer
from carebot.store.logins import SessionRecords

log = logging.getLogger(__name__)
SESSION_COOKIE = "carebot_session"
# The session serves /inbox and /insights; the login form's own cookie stays under /inbox.
SESSION_PATH = "/"
ROLES = ("agent", "lead", "ops")
LOGIN_COOKIE = "carebot_login"
_hasher = PasswordHasher()
# What a login with an unknown name is checked against, so that it takes as long as a known
# one's: the hash of a random password nobody kept, made once with _hasher's parameters (a test
# checks they still match). Made at each start it cost 0.1 s of CPU per worker start.
_DUMMY = (
    "$argon2id$v=19$m=65536,t=3,p=4$jDebTGN0wUTUqprtcLOcHw"
    "$slZaI3nuG9ARkdYfqanP/FWfxOWSs9Gc6qvc4CvIxO0"
)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


@dataclass(frozen=True, slots=True)
class Agent:
    name: str
    display_name: str
    roles: frozenset[str] = frozenset({"agent"})

    def can(self, role: str) -> bool:
        """Whether the agent has ``role`` (``agent``, ``lead`` or ``ops``)."""
        return role in self.roles


@dataclass(frozen=True, slots=True)
class Session:
    agent: Agent
    csrf: str


class Agents:
    """The agents who may log in, with their password hashes."""

    def __init__(self, hashes: Mapping[str, tuple[Agent, str]]) -> None:
        self._hashes = dict(hashes)

    @classmethod
    def from_settings(cls, settings: InboxSettings, env: Mapping[str, str] = os.environ) -> Agents:
        hashes = {}
        for agent in settings.agents:
            if not agent.can_log_in:
                continue  # a Slack-only agent
            digest = agent.password_hash or env.get(agent.password_hash_env, "")
            if not digest.startswith("$argon2"):
                where = agent.password_hash_env or "password_hash"
                raise ConfigError(
                    f"[inbox] agent {agent.name!r}: {where} must hold an argon2 hash "
                    "(make one with 'carebot inbox hash-password')"
                )
            hashes[agent.name] = (Agent(agent.name, agent.label, frozenset(agent.roles)), digest)
        return cls(hashes)

    @classmethod
    def demo(cls) -> tuple[Agents, str]:
        """One agent 'agent' with every role and a random password, for a first run with no
        agents configured."""
        password = secrets.token_urlsafe(9)
        agent = Agent("agent", "Demo agent", frozenset(ROLES))
        return cls({"agent": (agent, hash_password(password))}), password

    def __len__(self) -> int:
        return len(self._hashes)

    def names(self) -> list[str]:
        return list(self._hashes)

    def get(self, name: str) -> Agent | None:
        entry = self._hashes.get(name)
        return entry[0] if entry else None

    async def verify(self, name: str, password: str) -> Agent | None:
        """The agent, if the password is right (same work whether or not the name exists)."""
        agent, digest = self._hashes.get(name, (None, _DUMMY))
        try:
            await asyncio.to_thread(_hasher.verify, digest, password)
        except (VerificationError, InvalidHashError):
            return None
        return agent


class Sessions:
    """Agents' sessions, kept server-side (:class:`SessionRecords`) so that every worker sees a
    logout at once. The cookie carries the session's random id, signed; each request reads the
    row and checks that its agent is still configured."""

    def __init__(
        self,
        signer: Signer,
        agents: Agents,
        records: SessionRecords,
        *,
        hours: float,
        secure_cookies: bool = False,
    ) -> None:
        self._signer = signer
        self._agents = agents
        self._records = records
        self._ttl = hours * 3600
        self._secure_cookies = secure_cookies

    def secure(self, request: web.Request) -> bool:
        """Whether cookies get the Secure flag: over HTTPS, or always with ``[server]
        secure_cookies`` (behind a proxy that ends TLS, the request itself is plain HTTP)."""
        return request.secure or self._secure_cookies

    async def read(self, request: web.Request) -> Session | None:
        session_id = self._session_id(request)
        if session_id is None:
            return None
        row = await self._records.find(session_id)
        agent = self._agents.get(row.agent) if row else None
        return Session(agent, row.csrf) if agent and row else None

    async def start(self, response: web.StreamResponse, agent: Agent, request: web.Request) -> None:
        session_id, _ = await self._records.start(agent.name, ttl=timedelta(seconds=self._ttl))
        token = self._signer.sign(session_id, ttl=self._ttl)
        secure = self.secure(request)
        _cookie(
            response,
            SESSION_COOKIE,
            token,
            max_age=int(self._ttl),
            secure=secure,
            path=SESSION_PATH,
        )
        response.del_cookie(LOGIN_COOKIE, path="/inbox")

    async def end(self, request: web.Request, response: web.StreamResponse) -> None:
        """Log out: the session's row ends now (the cookie then opens nothing on any worker)."""
        session_id = self._session_id(request)
        if session_id is not None:
            await self._records.end(session_id)
        response.del_cookie(SESSION_COOKIE, path=SESSION_PATH)

    async def end_removed_agents(self) -> int:
        """At start: end the sessions of agents no longer in the config."""
        ended = await self._records.end_all_but(self._agents.names())
        if ended:
            log.info("Ended %d inbox session(s) of agents no longer configured", ended)
        return ended

    def _session_id(self, request: web.Request) -> str | None:
        return self._signer.verify(request.cookies.get(SESSION_COOKIE, "")) or None


def login_csrf(request: web.Request, response: web.StreamResponse, *, secure: bool) -> str:
    """The login form's CSRF token (double submit: the same value in a cookie and the form)."""
    token = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)
    _cookie(response, LOGIN_COOKIE, token, max_age=3600, secure=secure)
    return token


def _cookie(
    response: web.StreamResponse,
    name: str,
    value: str,
    *,
    max_age: int,
    secure: bool,
    path: str = "/inbox",
) -> None:
    response.set_cookie(
        name, value, max_age=max_age, path=path, httponly=True, samesite="Strict", secure=secure
    )


def same_origin(request: web.Request, public_url: str = "") -> bool:
    """Whether the request's ``Origin`` (if it sent one) is this service: the scheme and host
    the request came to, or those of ``[server] public_url`` (behind a proxy). A browser
    always sends ``Origin`` on a cross-site WebSocket; without one the request is allowed."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    own = {f"{request.scheme}://{request.host}".lower()}
    if public_url:
        parts = urlsplit(public_url)
        own.add(f"{parts.scheme}://{parts.netloc}".lower())
    return origin.strip().rstrip("/").lower() in own
