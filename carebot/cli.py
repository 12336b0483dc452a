"""The ``carebot`` command. Heavy imports (torch, the model) happen inside the commands that
need them, so ``carebot --help``, ``intents check --no-conflicts`` and ``db upgrade`` stay fast."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import TypeAlias

from carebot.exceptions import CarebotError


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG
        if args.verbose > 1
        else logging.INFO
        if args.verbose
        else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.command(args) or 0)
    except CarebotError as exc:
        print(f"carebot: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


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
    _add_intents(commands)
    _add_inbox(commands)
    _add_db(commands)
    return parser


def _group(commands: Commands, name: str, help: str) -> Commands:
    """A command that only groups subcommands; alone, it prints its help."""
    group = commands.add_parser(name, help=help)
    group.set_defaults(command=lambda _args: group.print_help())
    return group.add_subparsers(title=f"{name} commands", metavar="COMMAND")


def _add_serve(commands: Commands) -> None:
    serve = commands.add_parser(
        "serve", help="run the service: web chat, agent inbox, health checks"
    )
    serve.add_argument("--host", help="address to listen on (default: [server] host)")
    serve.add_argument("--port", type=int, help="port to listen on (default: [server] port)")
    serve.set_defaults(command=_serve)


def _add_chat(commands: Commands) -> None:
    chat = commands.add_parser("chat", help="talk to the bot as a customer (reads piped input too)")
    chat.add_argument(
        "--explain", action="store_true", help="print the decision line after each bot turn"
    )
    chat.add_argument("--user", help="customer id to chat as (default: a new visitor each run)")
    chat.set_defaults(command=_chat)


def _add_intents(commands: Commands) -> None:
    check = _group(commands, "intents", "work with the FAQ intents").add_parser(
        "check", help="validate intent files (exit 1 on errors)"
    )
    check.add_argument(
        "directory", nargs="?", type=Path, help="intents folder (default: [matcher] intents_dir)"
    )
    check.add_argument(
        "--no-conflicts",
        action="store_true",
        help="skip the conflict analysis (does not load the model)",
    )
    check.set_defaults(command=_intents_check)


def _add_inbox(commands: Commands) -> None:
    _group(commands, "inbox", "the built-in agent inbox").add_parser(
        "hash-password", help="make an argon2 hash for [[inbox.agents]] password_hash"
    ).set_defaults(command=_hash_password)


def _add_db(commands: Commands) -> None:
    _group(commands, "db", "database maintenance").add_parser(
        "upgrade", help="apply the database migrations"
    ).set_defaults(command=_db_upgrade)


def _chat(args: argparse.Namespace) -> int:
    from carebot.chat import run_chat
    from carebot.config import load_settings

    asyncio.run(run_chat(load_settings(args.config), explain=args.explain, user=args.user))
    return 0


def _serve(args: argparse.Namespace) -> int:
    from carebot.config import load_settings
    from carebot.server import serve

    asyncio.run(serve(load_settings(args.config), host=args.host, port=args.port))
    return 0


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


def _intents_check(args: argparse.Namespace) -> int:
    from carebot.config import load_settings
    from carebot.intent_check import check_intents
    from carebot.intents import Severity

    settings = load_settings(args.config)
    directory = args.directory or settings.path(settings.matcher.intents_dir)
    encoder = None
    if not args.no_conflicts:
        from carebot.runtime import load_encoder

        encoder = lambda: load_encoder(settings)  # noqa: E731
    problems = check_intents(directory, placeholders=dict(settings.placeholders), encoder=encoder)
    for problem in problems:
        print(problem)
    errors = sum(p.severity is Severity.ERROR for p in problems)
    warnings = len(problems) - errors
    print(f"{directory}: {errors} error(s), {warnings} warning(s)")
    return 1 if errors else 0


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


if __name__ == "__main__":
    sys.exit(main())
