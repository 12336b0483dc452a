"""Agent logins for the inbox: argon2 password hashes from config or the environment, signed
session cookies (HttpOnly, SameSite=Strict) and a CSRF token on every form. An agent's roles
say what else they may open: ``lead`` the numbers at ``/insights`` and the conversation export,
``ops`` the intents."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from carebot.config import InboxSettings
from carebot.exceptions import ConfigError
from carebot.signing import Signer

log = logging.getLogger(__name__)
SESSION_COOKIE = "carebot_session"
# The session serves /inbox and /insights; the login form's own cookie stays under /inbox.
SESSION_PATH = "/"
ROLES = ("agent", "lead", "ops")
LOGIN_COOKIE = "carebot_login"
_hasher = PasswordHasher()


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
        self._dummy = _hasher.hash(secrets.token_hex(8))

    @classmethod
    def from_settings(cls, settings: InboxSettings, env: Mapping[str, str] = os.environ) -> Agents:
        hashes = {}
        for agent in settings.agents:
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

    def get(self, name: str) -> Agent | None:
        entry = self._hashes.get(name)
        return entry[0] if entry else None

    async def verify(self, name: str, password: str) -> Agent | None:
        """The agent, if the password is right (same work whether or not the name exists)."""
        agent, digest = self._hashes.get(name, (None, self._dummy))
        try:
            await asyncio.to_thread(_hasher.verify, digest, password)
        except (VerificationError, InvalidHashError):
            return None
        return agent


class Sessions:
    def __init__(self, signer: Signer, agents: Agents, *, hours: float) -> None:
        self._signer = signer
        self._agents = agents
        self._ttl = hours * 3600

    def read(self, request: web.Request) -> Session | None:
        value = self._signer.verify(request.cookies.get(SESSION_COOKIE, ""))
        if value is None:
            return None
        name, _, csrf = value.partition("|")
        agent = self._agents.get(name)
        return Session(agent, csrf) if agent and csrf else None

    def start(self, response: web.StreamResponse, agent: Agent, *, secure: bool) -> None:
        token = self._signer.sign(f"{agent.name}|{secrets.token_urlsafe(24)}", ttl=self._ttl)
        ttl = int(self._ttl)
        _cookie(response, SESSION_COOKIE, token, max_age=ttl, secure=secure, path=SESSION_PATH)
        response.del_cookie(LOGIN_COOKIE, path="/inbox")

    def end(self, response: web.StreamResponse) -> None:
        response.del_cookie(SESSION_COOKIE, path=SESSION_PATH)


def login_csrf(request: web.Request, response: web.StreamResponse) -> str:
    """The login form's CSRF token (double submit: the same value in a cookie and the form)."""
    token = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)
    _cookie(response, LOGIN_COOKIE, token, max_age=3600, secure=request.secure)
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
