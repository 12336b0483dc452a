"""``carebot``'s parser and the service's commands: ``serve``, ``chat``, ``inbox``, ``db``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from carebot import library_logs
from carebot.cli import intents, models, report, routes
from carebot.cli.commands import Commands, check_intents_first, group
from carebot.exceptions import CarebotError

if TYPE_CHECKING:
    from carebot.config import Settings
    from carebot.nlu.encoder import Encoder


def main(argv: list[str] | None = None, *, encoder: Encoder | None = None) -> int:
    """Run one command. ``encoder`` replaces the configured model (tests inject a fake one)."""
    args = _parser().parse_args(argv)
    args.encoder = encoder
    # serve --workers re-runs this command line for each worker; it can when it is the process's
    args.own_command_line = argv is None or list(argv) == sys.argv[1:]
    logging.basicConfig(
        level=logging.DEBUG
        if args.verbose > 1
        else logging.INFO
        if args.verbose
        else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    library_logs.protect()  # the libraries' loggers write customer data at DEBUG only
    try:
        return int(args.command(args) or 0)
    except CarebotError as exc:
        sys.stderr.write(f"carebot: {exc}\n")  # one write: serve --workers' share stderr
        return 2
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="carebot",
        description="Customer care on social channels: answers the repetitive questions, "
        "hands the rest to people.",
    )
    parser.add_argument(
        "-c",
        "--config",
        type=Path,
        default=None,
        help="config file (default: ./config.toml if present, else built-in defaults)",
    )
    parser.add_argument("--version", action="version", version=f"carebot {_version()}")
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="more logging (-vv: debug, which includes customer text)",
    )
    parser.set_defaults(command=lambda _args: parser.print_help())
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    _add_serve(commands)
    _add_chat(commands)
    intents.add_intents(commands)
    intents.add_eval(commands)
    _add_inbox(commands)
    _add_db(commands)
    models.add_model(commands)
    models.add_emotion(commands)
    report.add_report(commands)
    routes.add_routes(commands)
    return parser


def _version() -> str:
    """This installation's version, from the package metadata."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("carebot")
    except PackageNotFoundError:
        return "(not installed: run from a source folder)"


def _add_serve(commands: Commands) -> None:
    serve = commands.add_parser(
        "serve", help="run the service: web chat, agent inbox, health checks"
    )
    serve.add_argument("--host", help="address to listen on (default: [server] host)")
    serve.add_argument("--port", type=int, help="port to listen on (default: [server] port)")
    serve.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="worker processes on this machine, sharing the port (default: [server] workers); "
        "more than one needs PostgreSQL, a shared secret key and configured agents",
    )
    serve.set_defaults(command=_serve)


def _add_chat(commands: Commands) -> None:
    chat = commands.add_parser(
        "chat",
        help="talk to the bot as a customer (reads piped input too)",
        description="Talk to the bot as a customer, through the real model, intents and triage. "
        "The conversation goes to a throwaway database deleted at exit, so it never shows in "
        "the agent inbox; --store keeps it in the configured [store] database.",
    )
    chat.add_argument(
        "--explain", action="store_true", help="print the decision line after each bot turn"
    )
    chat.add_argument("--user", help="customer id to chat as (default: a new visitor each run)")
    chat.add_argument(
        "--store",
        action="store_true",
        help="keep the conversation in the configured [store] database (default: a throwaway "
        "SQLite database, deleted at exit). Agents cannot answer it from the service: its "
        "terminal channel runs only in this command",
    )
    chat.set_defaults(command=_chat)


def _add_inbox(commands: Commands) -> None:
    group(commands, "inbox", "the built-in agent inbox").add_parser(
        "hash-password", help="make an argon2 hash for [[inbox.agents]] password_hash"
    ).set_defaults(command=_hash_password)


def _add_db(commands: Commands) -> None:
    group(commands, "db", "database maintenance").add_parser(
        "upgrade", help="apply the database migrations"
    ).set_defaults(command=_db_upgrade)


def _chat(args: argparse.Namespace) -> int:
    from carebot.cli.chat import run_chat
    from carebot.config import load_settings

    settings = load_settings(args.config)
    check_intents_first(settings)
    asyncio.run(
        run_chat(
            settings,
            explain=args.explain,
            user=args.user,
            store=args.store,
            encoder=args.encoder,
        )
    )
    return 0


def _serve(args: argparse.Namespace) -> int:
    from carebot.cluster.safety import check_several_workers, with_workers
    from carebot.cluster.supervisor import Slot, for_worker
    from carebot.config import load_settings
    from carebot.server import serve

    settings = with_workers(load_settings(args.config), args.workers)
    check_several_workers(settings)
    slot = Slot.from_env()
    if slot is None and settings.server.workers > 1:
        return _supervise(args, settings)
    if slot is not None:
        slot.follow_supervisor()
        settings = for_worker(settings, slot.count)
    asyncio.run(serve(settings, host=args.host, port=args.port, encoder=args.encoder, slot=slot))
    return 0


def _supervise(args: argparse.Namespace, settings: Settings) -> int:
    from carebot.cluster.supervisor import supervise

    if not args.own_command_line:
        raise CarebotError(
            "serve --workers runs its own command line once per worker: start it as a command "
            "(carebot serve --workers N), not through carebot.cli.main() with other arguments"
        )
    host, port = args.host or settings.server.host, args.port or settings.server.port
    # each worker runs this command line again; an injected encoder (tests) needs no export
    command = [sys.executable, *sys.orig_argv[1:]]
    return supervise(settings, command, host, port, export=args.encoder is None)


def _hash_password(_args: argparse.Namespace) -> int:
    import getpass

    from carebot.desk.auth import hash_password

    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            print("carebot: the passwords differ", file=sys.stderr)
            return 1
    else:
        password = sys.stdin.readline().rstrip("\n")
    if len(password) < 8:
        print("carebot: use at least 8 characters", file=sys.stderr)
        return 1
    print(hash_password(password))
    return 0


def _db_upgrade(args: argparse.Namespace) -> int:
    from carebot.config import load_settings
    from carebot.store.database import Database

    async def upgrade() -> str | None:
        db = Database(load_settings(args.config).database_url())
        try:
            await db.upgrade()
            return await db.current_revision()
        finally:
            await db.close()

    print(f"database at revision {asyncio.run(upgrade())}")
    return 0
