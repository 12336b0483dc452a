"""``carebot routes check``: the routing rules checked against the intents (README, "Teams")."""

from __future__ import annotations

import argparse
from pathlib import Path

from carebot.cli.commands import Commands, group


def add_routes(commands: Commands) -> None:
    routes = group(commands, "routes", "the routing rules that send handoffs to teams")
    check = routes.add_parser(
        "check",
        help="check the [[routing.rules]] against the intents (exit 1 on problems)",
        description="List the routing rules in order and report every rule that names an "
        "unknown intent, intent tag, channel or reason code, or that can never match (an "
        "earlier rule takes all its handoffs, or its team has nobody to take them).",
    )
    check.add_argument(
        "--config",
        type=Path,
        default=argparse.SUPPRESS,  # else it would hide carebot's own -c/--config
        help="config file (default: carebot's --config, else ./config.toml)",
    )
    check.set_defaults(command=_routes_check)


def _routes_check(args: argparse.Namespace) -> int:
    from carebot.config import load_settings
    from carebot.nlu.intents import Severity, read_intents
    from carebot.teams.check import check_routes, route_table

    settings = load_settings(args.config)
    folder = settings.path(settings.matcher.intents_dir)
    intents, intent_problems = read_intents(
        folder, settings.placeholders, language=settings.languages.default
    )
    tags = {intent.id: intent.tags for intent in intents.intents}
    errors = sum(p.severity is Severity.ERROR for p in intent_problems)
    if errors:  # the rules need only the intents' ids and tags: check against those read
        print(
            f"note: the intents in {folder} have {errors} error(s) ('carebot intents check' "
            f"lists them); the rules are checked against the {len(intents)} intents read"
        )
    for line in route_table(settings):
        print(line)
    problems = check_routes(settings, tags)
    where = settings.source.name if settings.source else "the built-in settings"
    for problem in problems:
        print(f"{where}: {problem}")
    rules = len(settings.routing.rules)
    print(
        f"{where}: {rules} rule(s) checked against {len(intents)} intents in {folder}: "
        f"{len(problems)} problem(s)"
    )
    return 1 if problems else 0
