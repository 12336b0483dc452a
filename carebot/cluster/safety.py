"""Set-ups that break with several workers, refused before anything starts.

One worker may keep its state to itself; several (``[server] workers`` x ``machines``, or
``carebot serve --workers N``) share one database and must share everything a request can
meet on another worker: the store (SQLite is one machine's file, and one writer), the secret
that signs web chat tokens and inbox sessions (a generated secret file is one machine's), and
the agents who log in (the demo agent's password is made up by each process).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import ValidationError
from sqlalchemy.engine import make_url

from carebot.config import ServerSettings, Settings
from carebot.exceptions import ConfigError


def with_workers(settings: Settings, workers: int | None) -> Settings:
    """``settings`` with ``[server] workers`` replaced by ``workers`` (``--workers``), if given."""
    if workers is None or workers == settings.server.workers:
        return settings
    try:
        server = ServerSettings.model_validate({**settings.server.model_dump(), "workers": workers})
    except ValidationError as exc:
        reason = exc.errors()[0]["msg"].lower()
        raise ConfigError(f"--workers {workers}: {reason}, as for [server] workers") from exc
    return settings.model_copy(update={"server": server})


def check_several_workers(settings: Settings, env: Mapping[str, str] | None = None) -> None:
    """Raise ConfigError naming every problem (and its fix) when more than one worker would
    serve from this configuration's database and it is not safe; one worker is always fine."""
    total = settings.server.total_workers
    if total <= 1:
        return
    env = os.environ if env is None else env
    problems = [
        problem
        for problem in (
            _store_problem(settings, env),
            _secret_problem(settings, env),
            _agents_problem(settings),
        )
        if problem
    ]
    if problems:
        where = settings.source or "the built-in defaults (no config file)"
        server = settings.server
        raise ConfigError(
            f"{total} workers ([server] workers = {server.workers} x machines = "
            f"{server.machines}) cannot run with {where}:\n  - "
            + "\n  - ".join(problems)
            + "\nFix these, or run one worker (carebot serve --workers 1, [server] workers = 1 "
            "and machines = 1)."
        )


def _store_problem(settings: Settings, env: Mapping[str, str]) -> str | None:
    url = settings.database_url(env)
    if make_url(url).get_backend_name() != "sqlite":
        return None
    return (
        f"the store is SQLite ({url}), one machine's file with one writer at a time: several "
        'workers need PostgreSQL: set [store] url = "postgresql+asyncpg://user@host/carebot" '
        f"(or the {settings.store.url_env} environment variable) and run 'carebot db upgrade'"
    )


def _secret_problem(settings: Settings, env: Mapping[str, str]) -> str | None:
    name = settings.server.secret_env
    if name and env.get(name):
        return None
    source = f"{name} is not set in the environment" if name else "[server] secret_env is empty"
    file = settings.path(settings.server.secret_file)
    return (
        f"{source}, so the secret key would be the file {file}, "
        "generated per machine: web chat tokens and inbox sessions would fail on another "
        f"machine's worker. Set {name or 'CAREBOT_SECRET_KEY'} to the same secret of 32 "
        'characters or more for every worker (e.g. python -c "import secrets; '
        'print(secrets.token_urlsafe(48))")'
        + ("" if name else ' and [server] secret_env = "CAREBOT_SECRET_KEY"')
    )


def _agents_problem(settings: Settings) -> str | None:
    if settings.inbox.agents:
        return None
    return (
        "no [[inbox.agents]] are configured, so each worker would make up its own demo agent "
        "and password: add the agents to the config (password hashes from 'carebot inbox "
        "hash-password')"
    )
